package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
)

var errBasis = errors.New("p2p: batch lacks a valid basis")

// checkBasis is the basis row of docs/PROTOCOL-WIRE.md §3.2: where the run
// needs one, a batch states its basis, and the basis names none of the
// batch's own samples from first on (no honest producer computes at updates
// it has not made yet; a basis nobody can hold could never be checked).
func checkBasis(b *Batch, need bool) error {
	v, ok := b.Ext(ExtBasis)
	if !ok {
		if need {
			return fmt.Errorf("%w: public-data run, batch of machine %016x states no basis", errBasis, b.Machine)
		}
		return nil
	}
	bs, err := DecodeBasis(v)
	if err != nil {
		return fmt.Errorf("%w: %w", errBasis, err)
	}
	for _, h := range bs {
		if h.Machine == b.Machine && len(h.Samples) > 0 && h.Samples[len(h.Samples)-1].Hi >= b.First {
			return fmt.Errorf("%w: basis names the machine's own sample %d ≥ first %d", errBasis, h.Samples[len(h.Samples)-1].Hi, b.First)
		}
	}
	return nil
}

// Basis is the set of updates a batch's gradients were computed at: per
// machine, the samples whose updates the producer's weights held (and no
// others), machines strictly increasing, each with a non-empty set. It is
// extension type 1 of a version 2 batch (docs/PROTOCOL-WIRE.md §3.3).
type Basis []Holding

// Count is the number of updates in the basis.
func (bs Basis) Count() uint64 {
	var n uint64
	for _, h := range bs {
		n += h.Samples.Count()
	}
	return n
}

// AppendBasis appends the encoding of bs: uvarint(n_machines), then per
// machine u64be(machine), uvarint(n_ranges ≥ 1) and the ranges as
// (gap, span) uvarint pairs, exactly as in a sync digest (§5.2).
func AppendBasis(b []byte, bs Basis) []byte {
	b = binary.AppendUvarint(b, uint64(len(bs)))
	for _, h := range bs {
		b = binary.BigEndian.AppendUint64(b, h.Machine)
		b = binary.AppendUvarint(b, uint64(len(h.Samples)))
		b = appendRanges(b, h.Samples)
	}
	return b
}

// DecodeBasis parses a basis value; it refuses anything but the canonical
// encoding (machines strictly increasing, non-empty minimal ranges, no
// trailing bytes).
func DecodeBasis(b []byte) (Basis, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	// Every machine takes at least 11 bytes: a bound before allocating.
	if n > uint64(len(b))/11 {
		return nil, fmt.Errorf("%w: basis machine count", ErrMalformed)
	}
	bs := make(Basis, 0, n)
	for i := uint64(0); i < n; i++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: short basis", ErrMalformed)
		}
		m := binary.BigEndian.Uint64(b)
		if i > 0 && m <= bs[i-1].Machine {
			return nil, fmt.Errorf("%w: basis machines out of order", ErrMalformed)
		}
		var nr uint64
		if nr, b, err = uvarint(b[8:]); err != nil {
			return nil, err
		}
		if nr == 0 || nr > uint64(len(b))/2 {
			return nil, fmt.Errorf("%w: basis range count", ErrMalformed)
		}
		var rs Ranges
		if rs, b, err = readRanges(b, nr); err != nil {
			return nil, err
		}
		bs = append(bs, Holding{Machine: m, Samples: rs})
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after basis", ErrMalformed)
	}
	return bs, nil
}

// appendRanges appends rs (sorted, disjoint, non-adjacent, non-empty) as
// (gap, span) uvarint pairs: lo_0 = gap_0, lo_j = hi_{j-1} + gap_j.
func appendRanges(b []byte, rs Ranges) []byte {
	var prev uint64
	for i, r := range rs {
		if i == 0 {
			b = binary.AppendUvarint(b, r.Lo)
		} else {
			b = binary.AppendUvarint(b, r.Lo-prev)
		}
		b = binary.AppendUvarint(b, r.Hi-r.Lo)
		prev = r.Hi
	}
	return b
}

// readRanges reads nr ranges in appendRanges's encoding, refusing gaps
// below 2 after the first (ranges must be disjoint and non-adjacent) and
// overflow.
func readRanges(b []byte, nr uint64) (Ranges, []byte, error) {
	rs := make(Ranges, nr)
	var prev uint64
	for j := range rs {
		var gap, span uint64
		var err error
		if gap, b, err = uvarint(b); err != nil {
			return nil, nil, err
		}
		if span, b, err = uvarint(b); err != nil {
			return nil, nil, err
		}
		lo := gap
		if j > 0 {
			if gap < 2 || prev+gap < prev {
				return nil, nil, fmt.Errorf("%w: ranges", ErrMalformed)
			}
			lo = prev + gap
		}
		if lo+span < lo {
			return nil, nil, fmt.Errorf("%w: range overflow", ErrMalformed)
		}
		rs[j] = Range{lo, lo + span}
		prev = lo + span
	}
	return rs, b, nil
}
