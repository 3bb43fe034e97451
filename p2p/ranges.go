package p2p

import "sort"

// Range is the inclusive sample interval [Lo, Hi].
type Range struct{ Lo, Hi uint64 }

// Ranges is a set of samples as sorted, disjoint, non-adjacent intervals.
// The zero value is the empty set.
type Ranges []Range

// Add returns rs with [lo, hi] included.
func (rs Ranges) Add(lo, hi uint64) Ranges {
	if lo > hi {
		return rs
	}
	out := make(Ranges, 0, len(rs)+1)
	i := 0
	// Intervals entirely before lo (not even adjacent) stay as they are.
	for ; i < len(rs) && rs[i].Hi < lo && rs[i].Hi+1 < lo; i++ {
		out = append(out, rs[i])
	}
	// Merge everything overlapping or adjacent to [lo, hi].
	for ; i < len(rs) && (rs[i].Lo <= hi || rs[i].Lo-1 <= hi); i++ {
		lo, hi = min(lo, rs[i].Lo), max(hi, rs[i].Hi)
	}
	out = append(out, Range{lo, hi})
	return append(out, rs[i:]...)
}

// Count is the number of samples in the set.
func (rs Ranges) Count() uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Hi - r.Lo + 1
	}
	return n
}

// Sub returns the samples of rs that are not in o.
func (rs Ranges) Sub(o Ranges) Ranges {
	var out Ranges
	j := 0
	for _, r := range rs {
		for j < len(o) && o[j].Hi < r.Lo {
			j++
		}
		lo, covered := r.Lo, false
		for k := j; k < len(o) && o[k].Lo <= r.Hi; k++ {
			if o[k].Lo > lo {
				out = append(out, Range{lo, o[k].Lo - 1})
			}
			if o[k].Hi >= r.Hi {
				covered = true
				break
			}
			lo = o[k].Hi + 1
		}
		if !covered {
			out = append(out, Range{lo, r.Hi})
		}
	}
	return out
}

// Union returns the samples in rs or o, in time linear in their lengths.
func (rs Ranges) Union(o Ranges) Ranges {
	out := make(Ranges, 0, len(rs)+len(o))
	i, j := 0, 0
	for i < len(rs) || j < len(o) {
		var r Range
		if j == len(o) || i < len(rs) && rs[i].Lo <= o[j].Lo {
			r, i = rs[i], i+1
		} else {
			r, j = o[j], j+1
		}
		if n := len(out); n > 0 && (r.Lo <= out[n-1].Hi || r.Lo-1 <= out[n-1].Hi) {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Hull returns the smallest range covering the samples of rs in [lo, hi], by
// binary search.
func (rs Ranges) Hull(lo, hi uint64) (Range, bool) {
	i := sort.Search(len(rs), func(k int) bool { return rs[k].Hi >= lo })
	j := sort.Search(len(rs), func(k int) bool { return rs[k].Lo > hi }) - 1
	if i >= len(rs) || j < i {
		return Range{}, false
	}
	return Range{max(rs[i].Lo, lo), min(rs[j].Hi, hi)}, true
}

// Holding is the set of samples a log holds for one machine.
type Holding struct {
	Machine uint64
	Samples Ranges
	// Digest is the first 8 bytes (big-endian) of the set digest of the
	// machine's held updates: two peers holding the same samples with
	// different values find out by comparing it.
	Digest uint64
}
