package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/zopeer/zopeer/zo"
)

func proManifest() Manifest {
	m := testManifest()
	m.Pool, m.PoolChoices = 16, 4
	return m
}

// FedKSeed-Pro: a log of slotted updates, appended in random batchings,
// replays (from the base and from a checkpoint plus the tail) to the weights
// of applying its updates one by one; its set digest is the sum of the
// updates' v2 terms; every read (Get, Updates, Since) gives the slots back,
// also after a reopen; and the slots are not ignored.
func TestProReplayEqualsPerUpdate(t *testing.T) {
	ctx := context.Background()
	m := proManifest()
	dir := t.TempDir()
	s, err := Open(ctx, dir, m, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 9))
	var us []zo.Update
	for mch := range uint64(3) {
		for smp := range uint64(300) {
			u := upd(mch, smp)
			u.Slotted, u.Slot = true, uint8(rng.IntN(4))
			us = append(us, u)
		}
	}
	rng.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
	engine := func() *zo.Engine { return manifestEngine(t, m) }
	one := engine()
	var dig zo.SetDigest
	for _, u := range us {
		one.Apply([]zo.Update{u})
		dig.AddHash(zo.UpdateHash(u))
	}
	want := one.Weights().Hash()
	for rest := us[:600]; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(90))
		mustAppend(t, s, rest[:n]...)
		rest = rest[n:]
	}
	half := engine()
	half.Apply(us[:600])
	if _, err := s.WriteCheckpoint(ctx, half.Weights(), mustSummary(us[:600])); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, us[600:]...)
	if s.Digest() != dig {
		t.Fatal("the log's set digest is not the sum of its updates' v2 terms")
	}
	check := func(s *Store) {
		t.Helper()
		for _, fromBase := range []bool{true, false} {
			res, err := s.Replay(ctx, engine(), ReplayOptions{FromBase: fromBase})
			if err != nil {
				t.Fatal(err)
			}
			if res.Hash != want {
				t.Fatalf("fromBase=%v: Pro replay hash %x, per-update %x", fromBase, res.Hash[:8], want[:8])
			}
		}
		byKey := map[[2]uint64]zo.Update{}
		for _, u := range us {
			byKey[[2]uint64{u.Machine, u.Sample}] = u
		}
		for u, err := range s.Updates(ctx, Key{}) {
			if err != nil || byKey[[2]uint64{u.Machine, u.Sample}] != u {
				t.Fatalf("Updates gave %+v (%v)", u, err)
			}
		}
		for e, err := range s.Since(ctx, 0) {
			if err != nil || byKey[[2]uint64{e.Update.Machine, e.Update.Sample}] != e.Update {
				t.Fatalf("Since gave %+v (%v)", e.Update, err)
			}
		}
		if got, ok, err := s.Get(us[7].Machine, us[7].Sample); err != nil || !ok || got != us[7] {
			t.Fatalf("Get gave %+v %v %v, want %+v", got, ok, err, us[7])
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir, m, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
	if s.Digest() != dig {
		t.Fatal("the reopened log's set digest differs")
	}
	moved := make([]zo.Update, len(us))
	for i, u := range us {
		u.Slot = (u.Slot + 1) % 4
		moved[i] = u
	}
	other := engine()
	other.Apply(moved)
	if other.Weights().Hash() == want {
		t.Fatal("other slots reached the same weights: the slots are ignored")
	}
}

// The slot is part of an update's value: the same slot again is a duplicate,
// another slot for the same sample an equivocation (recorded with the slot
// offered); unslotted updates are refused in a Pro run, slotted ones outside
// one; a logged value of the wrong length is corruption.
func TestProDuplicateAndEquivocation(t *testing.T) {
	ctx := context.Background()
	s, err := OpenMemory(proManifest(), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := upd(1, 3)
	a.Slotted, a.Slot = true, 2
	mustAppend(t, s, a)
	if r := mustAppend(t, s, a); r.Duplicates != 1 || r.Added != 0 || len(r.Equivocations) != 0 {
		t.Fatalf("same slot again: %+v", r)
	}
	b := a
	b.Slot = 3
	r := mustAppend(t, s, b)
	if len(r.Equivocations) != 1 || r.Equivocations[0] != (Equivocation{Stored: a, Offered: b}) {
		t.Fatalf("another slot: %+v, want an equivocation", r)
	}
	n := 0
	for u, err := range s.Equivocations(ctx) {
		if err != nil || u != b {
			t.Fatalf("recorded equivocation %+v (%v), want %+v", u, err, b)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d equivocations recorded", n)
	}
	for _, u := range []zo.Update{upd(1, 4), {Machine: 1, Sample: 5, Exp: 120, Slotted: true, Slot: 4}} {
		if r := mustAppend(t, s, u); len(r.Refused) != 1 || !errors.Is(r.Refused[0].Err, zo.ErrPool) {
			t.Fatalf("%+v: %+v, want refused for its slot", u, r)
		}
	}
	plain, err := OpenMemory(testManifest(), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if r := mustAppend(t, plain, a); len(r.Refused) != 1 || !errors.Is(r.Refused[0].Err, zo.ErrPool) {
		t.Fatalf("a slotted update in a uniform run: %+v", r)
	}
	// A two-byte value (a uniform run's) in a Pro log is corrupt.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(updateKey(9, 9), []byte{120, 1}) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(9, 9); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a 2-byte value in a Pro log: %v, want ErrCorrupt", err)
	}
}
