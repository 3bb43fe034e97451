package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

func batchOf(machine, first uint64, n int) []zo.Update {
	us := make([]zo.Update, n)
	for i := range us {
		us[i] = zo.Update{Machine: machine, Sample: first + uint64(i), Exp: 120, Code: int8(i)}
	}
	return us
}

func testBatches(t *testing.T, s *Store) {
	ctx := context.Background()
	raws := map[uint64][]byte{}
	for _, first := range []uint64{0, 10, 20, 5000} {
		raw := []byte{byte(first), 1, 2, 3}
		raws[first] = raw
		res, err := s.AppendBatch(ctx, raw, batchOf(7, first, 10)...)
		if err != nil || res.Added != 10 {
			t.Fatalf("AppendBatch at %d: %+v %v", first, res, err)
		}
	}
	// The same batch again is idempotent and keeps the first bytes.
	if _, err := s.AppendBatch(ctx, []byte("other"), batchOf(7, 10, 10)...); err != nil {
		t.Fatal(err)
	}
	// Another machine's batches never show up.
	if _, err := s.AppendBatch(ctx, []byte("m8"), batchOf(8, 0, 4)...); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		lo, hi uint64
		max    int
		want   []uint64
	}{
		{0, 100, 0, []uint64{0, 10, 20}},
		{9, 10, 0, []uint64{0, 10}},
		{15, 15, 0, []uint64{10}},
		{30, 4999, 0, nil},
		{0, 1 << 40, 15, []uint64{0, 10}},
		{5009, 5009, 0, []uint64{5000}},
	} {
		got, err := s.Batches(7, c.lo, c.hi, c.max)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("Batches(7, %d, %d, %d): %d batches, want %d", c.lo, c.hi, c.max, len(got), len(c.want))
		}
		for i, f := range c.want {
			if !bytes.Equal(got[i], raws[f]) {
				t.Fatalf("Batches(7, %d, %d): batch %d is %q, want %q", c.lo, c.hi, i, got[i], raws[f])
			}
		}
	}
	// Malformed batches are refused before anything is written.
	for _, us := range [][]zo.Update{nil, {{Machine: 1, Sample: 0}, {Machine: 1, Sample: 2}}, {{Machine: 1}, {Machine: 2, Sample: 1}}} {
		if _, err := s.AppendBatch(ctx, []byte("x"), us...); err == nil {
			t.Errorf("AppendBatch(%v) must fail", us)
		}
	}
}
