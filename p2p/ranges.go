package p2p

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

// Intersect returns the samples in both rs and o.
func (rs Ranges) Intersect(o Ranges) Ranges {
	var out Ranges
	i, j := 0, 0
	for i < len(rs) && j < len(o) {
		lo, hi := max(rs[i].Lo, o[j].Lo), min(rs[i].Hi, o[j].Hi)
		if lo <= hi {
			out = append(out, Range{lo, hi})
		}
		if rs[i].Hi < o[j].Hi {
			i++
		} else {
			j++
		}
	}
	return out
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

// Holding is the set of samples a log holds for one machine.
type Holding struct {
	Machine uint64
	Samples Ranges
}
