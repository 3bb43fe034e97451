package p2p

import (
	"math"
	"math/rand/v2"
	"testing"
)

// set is the reference model for Ranges: a plain set of small samples.
type set map[uint64]bool

func (s set) ranges() Ranges {
	var rs Ranges
	for v := range s {
		rs = rs.Add(v, v)
	}
	return rs
}

func TestRangesAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 500; trial++ {
		a, b := set{}, set{}
		var ra, rb Ranges
		for i := 0; i < rng.IntN(8); i++ {
			lo := rng.Uint64N(60)
			hi := lo + rng.Uint64N(6)
			ra = ra.Add(lo, hi)
			for v := lo; v <= hi; v++ {
				a[v] = true
			}
		}
		for i := 0; i < rng.IntN(8); i++ {
			lo := rng.Uint64N(60)
			hi := lo + rng.Uint64N(6)
			rb = rb.Add(lo, hi)
			for v := lo; v <= hi; v++ {
				b[v] = true
			}
		}
		if !ra.valid() || !rb.valid() {
			t.Fatalf("invalid ranges %v %v", ra, rb)
		}
		sub, inter := ra.Sub(rb), ra.Intersect(rb)
		if !sub.valid() || !inter.valid() {
			t.Fatalf("invalid results %v %v", sub, inter)
		}
		for v := uint64(0); v < 70; v++ {
			if ra.Contains(v) != a[v] {
				t.Fatalf("%v contains %d: %v", ra, v, ra.Contains(v))
			}
			if sub.Contains(v) != (a[v] && !b[v]) || inter.Contains(v) != (a[v] && b[v]) {
				t.Fatalf("%v, %v at %d: sub %v inter %v", ra, rb, v, sub, inter)
			}
		}
		if ra.Count() != uint64(len(a)) {
			t.Fatalf("count %d, want %d", ra.Count(), len(a))
		}
	}
}

func TestRangesEdges(t *testing.T) {
	rs := Ranges{}.Add(math.MaxUint64-1, math.MaxUint64).Add(0, 0).Add(1, 5)
	if len(rs) != 2 || rs[0] != (Range{0, 5}) || !rs.valid() {
		t.Fatalf("%v", rs)
	}
	if got := (Ranges{{0, math.MaxUint64}}).Sub(rs); len(got) != 1 || got[0] != (Range{6, math.MaxUint64 - 2}) {
		t.Fatalf("sub %v", got)
	}
	if got := rs.Add(3, 2); len(got) != 2 {
		t.Fatalf("empty add changed the set: %v", got)
	}
}
