package store

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zopeer/zopeer/zo"
)

// TestBehaviour is the one behaviour suite, run against a disk store and an
// in-memory store alike.
func TestBehaviour(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"IdempotentAppend", testIdempotentAppend},
		{"Equivocation", testEquivocation},
		{"Ordering", testOrdering},
		{"Cursors", testCursors},
		{"RangeSummaries", testRangeSummaries},
		{"ManifestRoundTrip", testManifestRoundTrip},
		{"CheckpointReplay", testCheckpointReplay},
		{"CorruptCheckpoint", testCorruptCheckpoint},
		{"CheckpointNotLogged", testCheckpointNotLogged},
		{"WrongWeights", testWrongWeights},
		{"Concurrent", testConcurrent},
		{"Close", testClose},
		{"Batches", testBatches},
	}
	for _, mode := range []struct {
		name string
		disk bool
	}{{"disk", true}, {"memory", false}} {
		t.Run(mode.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					s, _ := openTest(t, mode.disk)
					c.fn(t, s)
				})
			}
		})
	}
}

func testIdempotentAppend(t *testing.T, s *Store) {
	a, b := upd(1, 0), upd(1, 1)
	if r := mustAppend(t, s, a); r.Added != 1 || r.Duplicates != 0 || r.Last != 1 {
		t.Fatalf("first append: %+v", r)
	}
	if r := mustAppend(t, s, a); r.Added != 0 || r.Duplicates != 1 || r.Last != 0 {
		t.Fatalf("second append: %+v", r)
	}
	if r := mustAppend(t, s, b, a, b); r.Added != 1 || r.Duplicates != 2 || r.Last != 2 {
		t.Fatalf("batch with duplicates: %+v", r)
	}
	if st := s.Stats(); st.Updates != 2 || st.Last != 2 {
		t.Fatalf("stats %+v, want 2 updates, last 2", st)
	}
	if got := collect(t, s, Key{}); !slices.Equal(got, []zo.Update{a, b}) {
		t.Fatalf("log %v", got)
	}
	var dig zo.SetDigest
	dig.Add(b)
	dig.Add(a)
	if s.Digest() != dig {
		t.Fatalf("digest %v, want %v", s.Digest(), dig)
	}
	got, ok, err := s.Get(1, 1)
	if err != nil || !ok || got != b {
		t.Fatalf("Get = %v %v %v, want %v", got, ok, err, b)
	}
	if _, ok, err := s.Get(1, 2); err != nil || ok {
		t.Fatalf("Get of a missing update = %v %v", ok, err)
	}
}

func testEquivocation(t *testing.T, s *Store) {
	a := upd(7, 3)
	mustAppend(t, s, a)
	r := mustAppend(t, s, flip(a), upd(7, 4))
	if r.Added != 1 || len(r.Equivocations) != 1 || r.Equivocations[0] != (Equivocation{Stored: a, Offered: flip(a)}) {
		t.Fatalf("append of an equivocation: %+v", r)
	}
	// Within one batch: the first value wins, the second is the equivocation.
	c := upd(8, 0)
	r = mustAppend(t, s, c, flip(c))
	if r.Added != 1 || len(r.Equivocations) != 1 || r.Equivocations[0].Stored != c {
		t.Fatalf("equivocation within a batch: %+v", r)
	}
	for _, want := range []zo.Update{a, c} {
		if got, _, _ := s.Get(want.Machine, want.Sample); got != want {
			t.Fatalf("stored %v overwritten by %v", want, got)
		}
	}
	var offered []zo.Update
	for u, err := range s.Equivocations(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		offered = append(offered, u)
	}
	if !slices.Equal(offered, []zo.Update{flip(a), flip(c)}) {
		t.Fatalf("recorded equivocations %v", offered)
	}
	if n := len(collectSince(t, s, 0)); n != 3 {
		t.Fatalf("%d entries in arrival order, want 3 (equivocations get none)", n)
	}
}

func testOrdering(t *testing.T, s *Store) {
	var want []zo.Update
	for _, m := range []uint64{0, 1, 2, 255, 256, 1 << 40, math.MaxUint64} {
		for _, x := range []uint64{0, 1, 2, 255, 256, 65536, math.MaxUint64 - 1, math.MaxUint64} {
			want = append(want, upd(m, x))
		}
	}
	shuffled := slices.Clone(want)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i := 0; i < len(shuffled); i += 5 {
		mustAppend(t, s, shuffled[i:min(i+5, len(shuffled))]...)
	}
	if got := collect(t, s, Key{}); !slices.Equal(got, want) {
		t.Fatalf("canonical order:\n got %v\nwant %v", got, want)
	}
	from := Key{Machine: 256, Sample: 3}
	i := slices.IndexFunc(want, func(u zo.Update) bool { return u.Machine == 256 && u.Sample == 255 })
	if got := collect(t, s, from); !slices.Equal(got, want[i:]) {
		t.Fatalf("from %v: got %v", from, got)
	}
	n := 0
	for range s.Updates(context.Background(), Key{}) {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("early break after %d", n)
	}
}

func testCursors(t *testing.T, s *Store) {
	var arrived []zo.Update
	for i := range 50 {
		u := upd(uint64(i%3), uint64(50-i))
		arrived = append(arrived, u)
		mustAppend(t, s, u)
		if i%7 == 0 {
			mustAppend(t, s, u) // duplicates take no sequence number
		}
	}
	all := collectSince(t, s, 0)
	if len(all) != len(arrived) {
		t.Fatalf("%d entries since 0, want %d", len(all), len(arrived))
	}
	for i, e := range all {
		if e.Seq != Cursor(i+1) || e.Update != arrived[i] {
			t.Fatalf("entry %d = %+v, want seq %d %v", i, e, i+1, arrived[i])
		}
	}
	tail := collectSince(t, s, 40)
	if len(tail) != 10 || tail[0].Seq != 41 {
		t.Fatalf("since 40: %+v", tail)
	}
	last := s.Stats().Last
	r := mustAppend(t, s, upd(9, 9), upd(9, 10))
	if r.Last != last+2 {
		t.Fatalf("Last = %d, want %d", r.Last, last+2)
	}
	if got := collectSince(t, s, last); len(got) != 2 || got[1].Update != upd(9, 10) {
		t.Fatalf("since %d after two appends: %+v", last, got)
	}
	if got := collectSince(t, s, r.Last); len(got) != 0 {
		t.Fatalf("since the newest: %+v", got)
	}
}

func testRangeSummaries(t *testing.T, s *Store) {
	for _, x := range []uint64{0, 1, 2, 5, 7, 8, 9} {
		mustAppend(t, s, upd(1, x))
	}
	mustAppend(t, s, upd(2, 3), upd(1, 2))
	want := Summary{1: {{0, 2}, {5, 5}, {7, 9}}, 2: {{3, 3}}}
	if got := s.Summary(); !reflect.DeepEqual(got, want) {
		t.Fatalf("summary %v, want %v", got, want)
	}
	mustAppend(t, s, upd(1, 6), upd(1, 4))
	if got := s.Held(1); !slices.Equal(got, RangeSet{{0, 2}, {4, 9}}) {
		t.Fatalf("held %v", got)
	}
	mustAppend(t, s, upd(1, 3))
	if got := s.Held(1); !slices.Equal(got, RangeSet{{0, 9}}) {
		t.Fatalf("held %v", got)
	}
	if ms := s.Summary().Machines(); !slices.Equal(ms, []uint64{1, 2}) {
		t.Fatalf("machines %v", ms)
	}
	if n := s.Summary().Count(); n != 11 {
		t.Fatalf("count %d", n)
	}
}

func testManifestRoundTrip(t *testing.T, s *Store) {
	want := testManifest()
	want.FormatVersion = FormatVersion
	if got := s.Manifest(); !reflect.DeepEqual(got, want) {
		t.Fatalf("manifest %+v, want %+v", got, want)
	}
	cfg, err := s.Manifest().Config()
	if err != nil || cfg.Run != want.Run || cfg.Dist != zo.Rademacher || cfg.LR != want.LR {
		t.Fatalf("config %+v %v", cfg, err)
	}
	b, err := encodeManifest(want)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeManifest(b)
	if err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("decoded %+v %v", m, err)
	}
}

// appendSome logs n updates over a few machines, with gaps and out of order.
func appendSome(t *testing.T, s *Store, r *rand.Rand, n int) []zo.Update {
	var us []zo.Update
	for range n {
		us = append(us, upd(uint64(r.IntN(4)), uint64(r.IntN(4*n))))
	}
	mustAppend(t, s, us...)
	return collect(t, s, Key{})
}

func testCheckpointReplay(t *testing.T, s *Store) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	// Checkpoint the first part, through the same path a node uses.
	first := appendSome(t, s, r, 150)
	e := newEngine(t, 1)
	applied := Summary{}
	for i := 0; i < len(first); i += 10 {
		batch := first[i:min(i+10, len(first))]
		e.Apply(batch)
		for _, u := range batch {
			applied.Add(u.Machine, u.Sample)
		}
	}
	info, err := s.WriteCheckpoint(ctx, e.Weights(), applied)
	if err != nil {
		t.Fatal(err)
	}
	if info.Updates != uint64(len(first)) || info.Hash != e.Weights().Hash() {
		t.Fatalf("checkpoint info %+v", info)
	}
	all := appendSome(t, s, r, 100)

	var calls int
	var last ReplayProgress
	fromCk := newEngine(t, 1)
	res, err := s.Replay(ctx, fromCk, ReplayOptions{Batch: 16, Progress: func(p ReplayProgress) { calls++; last = p }})
	if err != nil {
		t.Fatal(err)
	}
	tail := uint64(len(all) - len(first))
	if res.Checkpoint != info.ID || res.Applied != tail || res.Total != tail || len(res.Skipped) != 0 || res.Verified != 1 {
		t.Fatalf("replay from checkpoint: %+v", res)
	}
	if calls < int(tail/16) || last.Applied != tail {
		t.Fatalf("%d progress calls, last %+v", calls, last)
	}
	fromBase := newEngine(t, 1)
	resBase, err := s.Replay(ctx, fromBase, ReplayOptions{FromBase: true})
	if err != nil {
		t.Fatal(err)
	}
	if resBase.Checkpoint != 0 || resBase.Applied != uint64(len(all)) || resBase.UpdatesPerSec <= 0 || resBase.ElementsPerSec <= resBase.UpdatesPerSec {
		t.Fatalf("replay from base: %+v", resBase)
	}
	want, indep := independentHash(t, 1, all)
	if res.Hash != want || resBase.Hash != want {
		t.Fatalf("hashes: checkpoint+tail %x, base %x, independent %x", res.Hash[:4], resBase.Hash[:4], want[:4])
	}
	if !eqWeights(fromCk.Weights(), fromBase.Weights()) || !eqWeights(fromCk.Weights(), indep) {
		t.Fatal("weights differ bit for bit")
	}
	if !res.Included.Equal(s.Summary()) {
		t.Fatal("replay did not include the whole log")
	}

	// A checkpoint of everything is verified against the replayed hash, and
	// only two are kept.
	if _, err := s.WriteCheckpoint(ctx, fromCk.Weights(), res.Included); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteCheckpoint(ctx, fromCk.Weights(), res.Included); err != nil {
		t.Fatal(err)
	}
	cks, err := s.Checkpoints()
	if err != nil || len(cks) != 2 || cks[0].ID != info.ID+1 {
		t.Fatalf("kept checkpoints %v %v", cks, err)
	}
	if names, _ := s.cks.list(); len(names) != 2 {
		t.Fatalf("checkpoint files %v", names)
	}
	res, err = s.Replay(ctx, newEngine(t, 1), ReplayOptions{FromBase: true})
	if err != nil || res.Verified != 2 || res.Hash != want {
		t.Fatalf("replay verified against %d checkpoints: %v", res.Verified, err)
	}
}

func testCorruptCheckpoint(t *testing.T, s *Store) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(8, 9))
	e := newEngine(t, 1)
	applied := Summary{}
	for range 2 {
		us := appendSome(t, s, r, 40)
		var fresh []zo.Update
		for _, u := range us {
			if applied.Add(u.Machine, u.Sample) {
				fresh = append(fresh, u)
			}
		}
		e.Apply(fresh)
		if _, err := s.WriteCheckpoint(ctx, e.Weights(), applied); err != nil {
			t.Fatal(err)
		}
	}
	all := appendSome(t, s, r, 40)
	want, _ := independentHash(t, 1, all)
	cks, _ := s.Checkpoints()
	damage := []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"flipped bit", func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }},
		{"bad trailer", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"bad header", func(b []byte) []byte { b[14] ^= 0xff; return b }},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			orig, _, _ := s.cks.open(cks[1].File)
			var keep []byte
			corruptCkpt(t, s, cks[1], func(b []byte) []byte { keep = slices.Clone(b); return d.fn(b) })
			orig.Close()
			defer corruptCkpt(t, s, cks[1], func([]byte) []byte { return keep })
			res, err := s.Replay(ctx, newEngine(t, 1), ReplayOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Checkpoint != cks[0].ID || len(res.Skipped) != 1 || !errors.Is(res.Skipped[0], ErrCorrupt) || res.Hash != want {
				t.Fatalf("replay past a damaged checkpoint: %+v", res)
			}
			t.Log(res.Skipped[0])
		})
	}
	// Both damaged: replay falls back to the base weights.
	for _, c := range cks {
		corruptCkpt(t, s, c, func(b []byte) []byte { return b[:10] })
	}
	res, err := s.Replay(ctx, newEngine(t, 1), ReplayOptions{})
	if err != nil || res.Checkpoint != 0 || len(res.Skipped) != 2 || res.Hash != want {
		t.Fatalf("replay past two damaged checkpoints: %+v %v", res, err)
	}
}

func testCheckpointNotLogged(t *testing.T, s *Store) {
	mustAppend(t, s, upd(1, 1))
	e := newEngine(t, 1)
	_, err := s.WriteCheckpoint(context.Background(), e.Weights(), Summary{1: {{1, 2}}})
	if !errors.Is(err, ErrNotLogged) {
		t.Fatalf("checkpoint of unlogged updates: %v", err)
	}
	if cks, _ := s.Checkpoints(); len(cks) != 0 {
		t.Fatalf("checkpoints %v", cks)
	}
}

func testWrongWeights(t *testing.T, s *Store) {
	mustAppend(t, s, upd(1, 1))
	e := newEngine(t, 1)
	e.Apply([]zo.Update{upd(1, 1)})
	if _, err := s.WriteCheckpoint(context.Background(), e.Weights(), Summary{1: {{1, 1}}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Replay(context.Background(), newEngine(t, 2), ReplayOptions{})
	if !errors.Is(err, ErrBadWeights) {
		t.Fatalf("replay into weights of another layout: %v", err)
	}
}

func testClose(t *testing.T, s *Store) {
	mustAppend(t, s, upd(1, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(context.Background(), upd(1, 2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	for _, err := range s.Updates(context.Background(), Key{}) {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Updates after Close: %v", err)
		}
	}
}

// TestRangeSet checks RangeSet against a map on random inserts.
func TestRangeSet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for round := range 200 {
		var rs RangeSet
		set := map[uint64]bool{}
		span := uint64(5 + round)
		for range 3 * span {
			x := r.Uint64N(span)
			if round%10 == 0 {
				x = math.MaxUint64 - x
			}
			if rs.Add(x) == set[x] {
				t.Fatalf("Add(%d) novelty wrong", x)
			}
			set[x] = true
		}
		if rs.Count() != uint64(len(set)) {
			t.Fatalf("count %d, want %d", rs.Count(), len(set))
		}
		for i, g := range rs {
			if g.First > g.Last || (i > 0 && rs[i-1].Last+1 >= g.First) {
				t.Fatalf("not sorted, disjoint, non-adjacent: %v", rs)
			}
			for x := g.First; x <= g.Last && x >= g.First; x++ {
				if !set[x] {
					t.Fatalf("%d in %v but never added", x, rs)
				}
				if x == math.MaxUint64 {
					break
				}
			}
		}
		for x := range set {
			if !rs.Contains(x) {
				t.Fatalf("%d missing", x)
			}
		}
		if !rs.SubsetOf(rs) || (len(rs) > 1 && rs.SubsetOf(rs[1:])) {
			t.Fatalf("SubsetOf wrong on %v", rs)
		}
	}
}

// testConcurrent appends from several goroutines while a reader tails the log
// by cursor: resuming from the last sequence number seen must skip nothing.
func testConcurrent(t *testing.T, s *Store) {
	ctx := context.Background()
	const writers, per = 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				// Every writer also re-sends another's updates: duplicates race.
				if _, err := s.Append(ctx, upd(uint64(w), uint64(i)), upd(uint64((w+1)%writers), uint64(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var cur Cursor
	seen := map[Key]bool{}
	tail := func() {
		for e, err := range s.Since(ctx, cur) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Seq != cur+1 {
				t.Fatalf("cursor %d followed by %d", cur, e.Seq)
			}
			cur = e.Seq
			k := Key{e.Update.Machine, e.Update.Sample}
			if seen[k] {
				t.Fatalf("%v twice in arrival order", k)
			}
			seen[k] = true
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		tail()
	}
	if len(seen) != writers*per || s.Stats().Updates != writers*per {
		t.Fatalf("tailed %d updates, store has %d, want %d", len(seen), s.Stats().Updates, writers*per)
	}
}

// TestMaintenance runs value-log GC and periodic syncs on fast tickers while
// appending, then checks Close stops them and the data is intact.
func TestMaintenance(t *testing.T) {
	s, dir := openTest(t, true, WithGCEvery(time.Millisecond), WithSyncEvery(time.Millisecond), WithMemtableSize(1<<20))
	ctx := context.Background()
	for i := range 200 {
		if _, err := s.Append(ctx, benchUpdates(i*100, 100)...); err != nil {
			t.Fatal(err)
		}
		s.runGC() // also directly, so it runs at least once whatever the scheduler does
	}
	// One call spanning many transactions, duplicates included.
	if r := mustAppend(t, s, benchUpdates(0, 25000)...); r.Added != 5000 || r.Duplicates != 20000 || r.Last != 25000 {
		t.Fatalf("large append: added %d, duplicates %d, last %d", r.Added, r.Duplicates, r.Last)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	if n := s.Stats().Updates; n != 25000 {
		t.Fatalf("%d updates after reopening, want 25000", n)
	}
}
