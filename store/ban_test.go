package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// A ban is an exclusion that keeps the banned machine's signed batches:
// the set, digest and replay lose its updates exactly as with Exclude, later
// updates are refused, and Batches still serves what it had signed, across
// a reopen.
func TestBanKeepsBatches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, filepath.Join(dir, "s"), testManifest())
	if err != nil {
		t.Fatal(err)
	}
	var others, bad []zo.Update
	for i := range uint64(20) {
		others = append(others, zo.Update{Machine: 1, Sample: i, Exp: 120, Code: int8(i % 5)})
		bad = append(bad, zo.Update{Machine: 2, Sample: i, Exp: 121, Code: 3})
	}
	if _, err := s.Append(ctx, others...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendBatch(ctx, []byte("batch of 2"), bad...); err != nil {
		t.Fatal(err)
	}
	removed, fresh, err := s.Ban(ctx, 2, []byte("accusation"))
	if err != nil || !fresh || len(removed) != len(bad) {
		t.Fatalf("ban: %d removed, fresh %v, %v", len(removed), fresh, err)
	}
	var want zo.SetDigest
	for _, u := range others {
		want.Add(u)
	}
	want.AddHash(zo.ExclusionHash(2))
	check := func(s *Store, when string) {
		t.Helper()
		if s.Digest() != want || s.Stats().Updates != uint64(len(others)) {
			t.Fatalf("%s: digest %s (%d updates), want %s (%d)", when, s.Digest(), s.Stats().Updates, want, len(others))
		}
		if raws, _ := s.Batches(2, 0, 100, 0); len(raws) != 1 || string(raws[0]) != "batch of 2" {
			t.Fatalf("%s: the banned machine's batches: %q", when, raws)
		}
		if _, ok, _ := s.Get(2, 3); ok {
			t.Fatalf("%s: a banned update is still readable", when)
		}
		res, err := s.Append(ctx, zo.Update{Machine: 2, Sample: 99, Exp: 121, Code: 1})
		if err != nil || res.Added != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, ErrExcluded) {
			t.Fatalf("%s: a later update of the banned machine: %+v, %v", when, res, err)
		}
	}
	check(s, "after Ban")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(ctx, filepath.Join(dir, "s"), testManifest()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, "after reopen")
}

// A banned machine's batch that arrives after the ban (fetched because an
// accusation's basis names it) is kept for re-computation, never logged; a
// machine that is not excluded has its batches logged, not kept.
func TestKeepBannedBatch(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "s"), testManifest())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	late := []zo.Update{{Machine: 2, Sample: 20, Exp: 121, Code: 3}, {Machine: 2, Sample: 21, Exp: 121, Code: -3}}
	if err := s.KeepBannedBatch(ctx, []byte("late batch"), late); err == nil {
		t.Fatal("a batch of a machine that is not excluded was kept")
	}
	if _, _, err := s.Ban(ctx, 2, []byte("accusation")); err != nil {
		t.Fatal(err)
	}
	before := s.Digest()
	if err := s.KeepBannedBatch(ctx, []byte("late batch"), late); err != nil {
		t.Fatal(err)
	}
	if raws, _ := s.Batches(2, 20, 21, 0); len(raws) != 1 || string(raws[0]) != "late batch" {
		t.Fatalf("the kept batch: %q", raws)
	}
	if _, ok, _ := s.Get(2, 20); ok || s.Digest() != before || s.Stats().Updates != 0 {
		t.Fatalf("a kept batch's updates were logged: digest %s, %d updates", s.Digest(), s.Stats().Updates)
	}
	if err := s.KeepBannedBatch(ctx, []byte("x"), []zo.Update{{Machine: 2, Sample: 1}, {Machine: 2, Sample: 3}}); err == nil {
		t.Fatal("non-consecutive samples were kept")
	}
}
