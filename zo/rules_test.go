package zo

import (
	"errors"
	"testing"
)

func TestRules(t *testing.T) {
	r := Rules{GradBound: 16, MaxSamples: 1000}
	// 16 = 64·2^(126−128): exactly at the bound with exp 126.
	cases := []struct {
		name  string
		first uint64
		exp   uint8
		codes []int8
		want  error
	}{
		{"old extreme", 0, 255, []int8{127, -127}, ErrBound},
		{"exactly at the bound", 0, 126, []int8{64, -64}, nil},
		{"one step past", 0, 126, []int8{65}, ErrBound},
		{"code -128", 0, 100, []int8{-128}, ErrBound},
		{"honest", 10, 120, []int8{1, -5, 127}, nil},
		{"last sample under the cap", 999, 120, []int8{1}, nil},
		{"crosses the cap", 998, 120, []int8{1, 2, 3}, ErrSampleCap},
		{"beyond the cap", 1 << 62, 120, []int8{1}, ErrSampleCap},
	}
	for _, c := range cases {
		err := r.CheckBatch(7, c.first, c.exp, c.codes)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if err := (Rules{}).CheckBatch(7, 1<<63, 255, []int8{127}); err != nil {
		t.Errorf("zero rules refuse: %v", err)
	}
	closed := Rules{Admitted: map[uint64]bool{7: true}}
	if err := closed.Check(Update{Machine: 7}); err != nil {
		t.Error(err)
	}
	if err := closed.Check(Update{Machine: 8}); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("machine 8 in a closed run: %v", err)
	}
}
