package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

func TestExcludeRemovesAMachine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, filepath.Join(dir, "s"), testManifest())
	if err != nil {
		t.Fatal(err)
	}
	var others, bad []zo.Update
	for i := range uint64(50) {
		others = append(others, zo.Update{Machine: 1, Sample: i, Exp: 120, Code: int8(i % 7)})
		bad = append(bad, zo.Update{Machine: 2, Sample: i, Exp: 121, Code: -3})
	}
	if _, err := s.Append(ctx, others...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendBatch(ctx, []byte("raw batch of machine 2"), bad[:10]...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, bad[10:]...); err != nil {
		t.Fatal(err)
	}
	removed, fresh, err := s.Exclude(ctx, 2, []byte("evidence"))
	if err != nil || !fresh || len(removed) != len(bad) {
		t.Fatalf("exclude: %d removed, fresh %v, err %v", len(removed), fresh, err)
	}
	if _, again, _ := s.Exclude(ctx, 2, []byte("other evidence")); again {
		t.Fatal("second exclusion reported as new")
	}
	var want zo.SetDigest
	for _, u := range others {
		want.Add(u)
	}
	want.AddHash(zo.ExclusionHash(2))
	check := func(s *Store, when string) {
		t.Helper()
		if s.Digest() != want {
			t.Fatalf("%s: digest %s, want %s", when, s.Digest(), want)
		}
		if n := s.Stats().Updates; n != uint64(len(others)) {
			t.Fatalf("%s: %d updates, want %d", when, n, len(others))
		}
		if !s.Excluded(2) || s.Excluded(1) {
			t.Fatalf("%s: excluded set wrong", when)
		}
		if ex := s.Exclusions(); len(ex) != 1 || string(ex[0].Evidence) != "evidence" {
			t.Fatalf("%s: exclusions %+v", when, ex)
		}
		if raws, _ := s.Batches(2, 0, 100, 0); len(raws) != 0 {
			t.Fatalf("%s: %d batches of the excluded machine still served", when, len(raws))
		}
		res, err := s.Append(ctx, zo.Update{Machine: 2, Sample: 99, Exp: 1, Code: 1})
		if err != nil || res.Added != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, ErrExcluded) {
			t.Fatalf("%s: append of an excluded machine: %+v, %v", when, res, err)
		}
		if _, ok, _ := s.Get(2, 3); ok {
			t.Fatalf("%s: excluded update still readable", when)
		}
	}
	check(s, "after Exclude")
	// Replay equals a replay of the others only.
	e := newEngine(t, 1)
	if _, err := s.Replay(ctx, e, ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := newEngine(t, 1)
	ref.Apply(others)
	if e.Weights().Hash() != ref.Weights().Hash() {
		t.Fatal("replay after exclusion differs from applying the others only")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, filepath.Join(dir, "s"), testManifest())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, "after reopen")
}

func TestAppendRefusesWhatTheRulesRefuse(t *testing.T) {
	m := testManifest()
	m.GradBound, m.MaxSamples = 16, 100
	s, err := OpenMemory(m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// The old extreme: exponent 255, codes ±127.
	res, err := s.AppendBatch(ctx, []byte("raw"), zo.Update{Machine: 1, Sample: 0, Exp: 255, Code: 127}, zo.Update{Machine: 1, Sample: 1, Exp: 255, Code: -127})
	if err != nil || res.Added != 0 || len(res.Refused) != 2 || !errors.Is(res.Refused[0].Err, zo.ErrBound) {
		t.Fatalf("extreme batch: %+v, %v", res, err)
	}
	// A batch with one bad update is refused whole; its raw is not stored.
	res, _ = s.AppendBatch(ctx, []byte("raw2"), zo.Update{Machine: 1, Sample: 0, Exp: 126, Code: 64}, zo.Update{Machine: 1, Sample: 1, Exp: 126, Code: 65})
	if res.Added != 0 || len(res.Refused) != 2 {
		t.Fatalf("mixed batch: %+v", res)
	}
	if raws, _ := s.Batches(1, 0, 10, 0); len(raws) != 0 {
		t.Fatal("a refused batch was stored")
	}
	// Exactly at the bound: accepted.
	res, _ = s.AppendBatch(ctx, []byte("raw3"), zo.Update{Machine: 1, Sample: 0, Exp: 126, Code: 64}, zo.Update{Machine: 1, Sample: 1, Exp: 126, Code: -64})
	if res.Added != 2 || len(res.Refused) != 0 {
		t.Fatalf("batch at the bound: %+v", res)
	}
	res, _ = s.Append(ctx, zo.Update{Machine: 1, Sample: 100, Exp: 120, Code: 1})
	if res.Added != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, zo.ErrSampleCap) {
		t.Fatalf("sample at the cap: %+v", res)
	}
}
