package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Range is an inclusive range of sample numbers.
type Range struct {
	First, Last uint64
}

// MarshalJSON writes r as [first, last], keeping summaries in checkpoint
// metadata compact.
func (r Range) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]uint64{r.First, r.Last})
}

// UnmarshalJSON reads the form MarshalJSON writes.
func (r *Range) UnmarshalJSON(b []byte) error {
	var a [2]uint64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if a[0] > a[1] {
		return fmt.Errorf("store: range [%d, %d] is empty", a[0], a[1])
	}
	r.First, r.Last = a[0], a[1]
	return nil
}

// RangeSet is a set of sample numbers as sorted, disjoint, non-adjacent
// ranges. A machine's samples mostly arrive in order, so the set stays a
// handful of ranges however many samples it holds.
type RangeSet []Range

// find returns the index of the first range whose Last is at least x.
func (r RangeSet) find(x uint64) int {
	return sort.Search(len(r), func(i int) bool { return r[i].Last >= x })
}

// Contains reports whether x is in the set.
func (r RangeSet) Contains(x uint64) bool {
	i := r.find(x)
	return i < len(r) && r[i].First <= x
}

// Add inserts x and reports whether it was new.
func (r *RangeSet) Add(x uint64) bool {
	s := *r
	// Fast path: the next sample of a machine that streams in order.
	if n := len(s); n > 0 && s[n-1].Last < x {
		if s[n-1].Last+1 == x {
			s[n-1].Last = x
		} else {
			*r = append(s, Range{x, x})
		}
		return true
	}
	i := s.find(x)
	if i < len(s) && s[i].First <= x {
		return false
	}
	// i == len(s) or s[i].First > x, so x < MaxUint64 and x+1 cannot overflow;
	// s[i-1].Last < x, so s[i-1].Last+1 cannot either.
	left := i > 0 && s[i-1].Last+1 == x
	right := i < len(s) && s[i].First == x+1
	switch {
	case left && right:
		s[i-1].Last = s[i].Last
		s = slices.Delete(s, i, i+1)
	case left:
		s[i-1].Last = x
	case right:
		s[i].First = x
	default:
		s = slices.Insert(s, i, Range{x, x})
	}
	*r = s
	return true
}

// Count is the number of samples in the set.
func (r RangeSet) Count() uint64 {
	var n uint64
	for _, g := range r {
		n += g.Last - g.First + 1
	}
	return n
}

// SubsetOf reports whether every sample of r is in o.
func (r RangeSet) SubsetOf(o RangeSet) bool {
	for _, g := range r {
		i := o.find(g.First)
		if i == len(o) || o[i].First > g.First || o[i].Last < g.Last {
			return false
		}
	}
	return true
}

// Summary is a set of updates as per-machine sample ranges: what a store
// holds, or exactly which updates a checkpoint's weights include.
type Summary map[uint64]RangeSet

// Add inserts (machine, sample) and reports whether it was new.
func (s Summary) Add(machine, sample uint64) bool {
	r := s[machine]
	ok := r.Add(sample)
	s[machine] = r
	return ok
}

// Contains reports whether (machine, sample) is in the set.
func (s Summary) Contains(machine, sample uint64) bool {
	return s[machine].Contains(sample)
}

// Count is the number of updates in the set.
func (s Summary) Count() uint64 {
	var n uint64
	for _, r := range s {
		n += r.Count()
	}
	return n
}

// SubsetOf reports whether every update of s is in o.
func (s Summary) SubsetOf(o Summary) bool {
	for m, r := range s {
		if !r.SubsetOf(o[m]) {
			return false
		}
	}
	return true
}

// Equal reports whether s and o hold the same updates.
func (s Summary) Equal(o Summary) bool {
	return s.Count() == o.Count() && s.SubsetOf(o)
}

// Clone returns a deep copy.
func (s Summary) Clone() Summary {
	c := make(Summary, len(s))
	for m, r := range s {
		c[m] = slices.Clone(r)
	}
	return c
}

// Machines returns the machines with at least one update, ascending.
func (s Summary) Machines() []uint64 {
	return slices.Sorted(maps.Keys(s))
}
