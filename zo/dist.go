package zo

import (
	"fmt"
	"math"
)

// Dist is the perturbation distribution. Both are integer-valued before scaling,
// so perturbed views and updates are exact integer arithmetic on every platform.
type Dist uint8

const (
	// Rademacher: z_i = ±1. Element i takes bit (i mod 32) of word (i/32 mod 4) of
	// block i/128; bit 0 means +1, bit 1 means -1. The default (Spall's SPSA).
	Rademacher Dist = iota
	// Gauss4: z_i = (b0+b1+b2+b3 - 510)/sqrt(21845), the bytes of word (i mod 4) of
	// block i/4: an Irwin-Hall approximation of N(0,1) with unit variance, range ±3.45.
	Gauss4
)

// blockElems is how many elements one Philox block serves, per distribution.
func (d Dist) blockElems() uint64 {
	if d == Gauss4 {
		return 4
	}
	return 128
}

// sigma is the standard deviation of the integer-valued z (z = zInt/sigma has unit variance).
func (d Dist) sigma() float64 {
	if d == Gauss4 {
		return math.Sqrt(21845) // 4 · (256² − 1)/12
	}
	return 1
}

// maxZ is max|zInt|: 1 for rademacher, 510 for gauss4 (four bytes of 255 less 510).
func (d Dist) maxZ() int64 {
	if d == Gauss4 {
		return 510
	}
	return 1
}

func (d Dist) String() string {
	switch d {
	case Rademacher:
		return "rademacher"
	case Gauss4:
		return "gauss4"
	}
	return fmt.Sprintf("dist(%d)", uint8(d))
}

// ParseDist is the inverse of Dist.String.
func ParseDist(s string) (Dist, error) {
	switch s {
	case "rademacher":
		return Rademacher, nil
	case "gauss4":
		return Gauss4, nil
	}
	return 0, fmt.Errorf("zo: unknown perturbation distribution %q (want rademacher or gauss4)", s)
}

// Fill writes the integer-valued perturbation zInt for elements
// [offset, offset+len(dst)) of seed's stream. It is the reference definition of
// the stream; every fast path must agree with it element for element.
func (d Dist) Fill(s Seed, offset uint64, dst []int32) {
	per := d.blockElems()
	var blk [4]uint32
	cur := ^uint64(0)
	for j := range dst {
		i := offset + uint64(j)
		if b := i / per; b != cur {
			blk, cur = s.Block(b), b
		}
		if d == Gauss4 {
			w := blk[i&3]
			dst[j] = int32(w&0xff+(w>>8)&0xff+(w>>16)&0xff+w>>24) - 510
		} else {
			bit := blk[(i>>5)&3] >> (i & 31) & 1
			dst[j] = 1 - 2*int32(bit)
		}
	}
}
