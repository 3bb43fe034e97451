package p2p

import (
	"math"
	"math/rand/v2"
	"testing"
)

// set is the reference model for Ranges: a plain set of small samples.
type set map[uint64]bool

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
		sub, union := ra.Sub(rb), ra.Union(rb)
		if !sub.valid() || !union.valid() {
			t.Fatalf("invalid results %v %v", sub, union)
		}
		lo := rng.Uint64N(70)
		hi := lo + rng.Uint64N(20)
		var in Ranges
		for v := lo; v <= hi; v++ {
			if a[v] {
				in = in.Add(v, v)
			}
		}
		h, ok := ra.Hull(lo, hi)
		if ok != (len(in) > 0) || ok && h != (Range{in[0].Lo, in[len(in)-1].Hi}) {
			t.Fatalf("%v hull [%d, %d] = %v, %v; want the hull of %v", ra, lo, hi, h, ok, in)
		}
		for v := uint64(0); v < 70; v++ {
			if ra.Contains(v) != a[v] {
				t.Fatalf("%v contains %d: %v", ra, v, ra.Contains(v))
			}
			if sub.Contains(v) != (a[v] && !b[v]) || union.Contains(v) != (a[v] || b[v]) {
				t.Fatalf("%v, %v at %d: sub %v union %v", ra, rb, v, sub, union)
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

// Contains reports whether sample s is in the set.
func (rs Ranges) Contains(s uint64) bool {
	for _, r := range rs {
		if s < r.Lo {
			return false
		}
		if s <= r.Hi {
			return true
		}
	}
	return false
}

// valid reports whether rs is sorted, disjoint and non-adjacent.
func (rs Ranges) valid() bool {
	for i, r := range rs {
		if r.Lo > r.Hi || i > 0 && rs[i-1].Hi+1 >= r.Lo {
			return false
		}
	}
	return true
}

// TestPlanFragmentedDigest: digests of the largest size a peer accepts, cut
// into as many ranges as possible, cost linear time and a bounded plan.
func TestPlanFragmentedDigest(t *testing.T) {
	var hs []Holding
	rs := make(Ranges, 0, maxDigestRanges/2)
	for i := uint64(0); i < maxDigestRanges/2; i++ {
		rs = append(rs, Range{3 * i, 3 * i})
	}
	hs = append(hs, Holding{Machine: 1, Samples: rs})
	enc := encodeDigest(hs, nil, MaxDigestSize)
	dec, _, err := decodeDigest(enc)
	if err != nil {
		t.Fatal(err)
	}
	d1 := &donor{id: "a", holds: map[uint64]Ranges{1: dec[0].Samples}}
	shifted := make(Ranges, len(rs))
	for i, r := range rs {
		shifted[i] = Range{r.Lo + 1, r.Hi + 1}
	}
	d2 := &donor{id: "b", holds: map[uint64]Ranges{1: shifted}}
	chunks := plan([]Holding{{Machine: 1, Samples: Ranges{{0, 0}}}}, nil, []*donor{d1, d2}, func(uint64) bool { return false }, maxChunks)
	if len(chunks) != maxChunks {
		t.Fatalf("%d chunks, want the cap %d", len(chunks), maxChunks)
	}
	q := &workQueue{chunks: chunks}
	if _, part, ok := q.take(d2); !ok || part.Lo != 1 {
		t.Fatalf("take: %v %v", part, ok)
	}
}
