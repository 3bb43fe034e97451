package p2p

import (
	"testing"
	"time"

	"github.com/zopeer/zopeer/zo"
)

// TestPlanSkipsPending: samples gossip delivered that are on their way into
// the log are not fetched again; the rest of what a donor holds is.
func TestPlanSkipsPending(t *testing.T) {
	d := &donor{id: "a", holds: map[uint64]Ranges{1: {{0, 99}}, 2: {{0, 9}}}, digests: map[uint64]uint64{}}
	mine := []Holding{{Machine: 1, Samples: Ranges{{0, 9}}}}
	never := func(uint64) bool { return false }
	chunks := plan(mine, map[uint64]Ranges{1: {{10, 49}}, 2: {{0, 9}}}, []*donor{d}, never, maxChunks)
	if len(chunks) != 1 || chunks[0].machine != 1 || chunks[0].r != (Range{50, 99}) {
		t.Fatalf("plan with pending samples: %+v", chunks)
	}
	if chunks := plan(mine, nil, []*donor{d}, never, maxChunks); len(chunks) != 2 {
		t.Fatalf("plan without pending samples: %d chunks, want 2", len(chunks))
	}
}

// TestAgreed: periodic rounds are skipped only while every recent
// announcement is of our own set.
func TestAgreed(t *testing.T) {
	var own State
	own.Count = 5
	own.Digest[0] = 1
	p := &Peer{opts: Options{StateInterval: time.Second, State: func() (State, bool) { return own, true }},
		machine: 7, heardStates: map[uint64]heard{}}
	now := time.Now()
	if p.agreed(now) {
		t.Fatal("agreed with nobody heard")
	}
	p.noteStateLocked(State{Machine: 7, Count: 1}, now) // our own echo: not evidence of agreement
	if p.agreed(now) {
		t.Fatal("agreed with only our own announcement")
	}
	p.noteStateLocked(State{Machine: 1, Count: 5, Digest: own.Digest}, now)
	if !p.agreed(now) {
		t.Fatal("one peer announced our set: want agreement")
	}
	var other zo.SetDigest
	other[0] = 2
	p.noteStateLocked(State{Machine: 2, Count: 5, Digest: other}, now)
	if p.agreed(now) {
		t.Fatal("a peer announced another set of as many updates: want no agreement")
	}
	p.noteStateLocked(State{Machine: 2, Count: 5, Digest: own.Digest}, now)
	p.noteStateLocked(State{Machine: 1, Count: 6, Digest: own.Digest}, now)
	if p.agreed(now) {
		t.Fatal("a peer holds more: want no agreement")
	}
	// Announcements older than IdleAnnounce+1 intervals are forgotten.
	if p.agreed(now.Add(time.Duration(IdleAnnounce+2)*time.Second)) || len(p.heardStates) != 0 {
		t.Fatalf("agreed on stale announcements (%d remembered)", len(p.heardStates))
	}
}

// TestAnnouncedBatchFetched: two peers in agreement, then one logs a batch
// it does not gossip; its announcement makes the other fetch it by
// anti-entropy (after the grace gossip gets).
func TestAnnouncedBatchFetched(t *testing.T) {
	mk := func() *testPeer {
		return newTestPeer(t, "lean", func(o *Options) {
			l := o.Log.(*MemLog)
			o.StateInterval = 100 * time.Millisecond
			o.State = func() (State, bool) { return State{Count: uint64(l.Count()), Digest: l.Digest()}, true }
		})
	}
	a, b := mk(), mk()
	connectAll(t, a, b)
	waitMesh(t, a, b)
	waitFor(t, "agreement", func() bool { return a.agreed(time.Now()) && b.agreed(time.Now()) })
	batch, err := a.NewBatch(0, 10, testCodes(16, 1))
	if err != nil {
		t.Fatal(err)
	}
	a.log.Store(batch) // logged, never gossiped
	waitFor(t, "the batch fetched by anti-entropy", func() bool { return b.log.Count() == 16 })
	if b.Stats().SyncUpdates != 16 {
		t.Fatalf("sync delivered %d updates, want 16", b.Stats().SyncUpdates)
	}
}
