package p2p

import (
	"context"
	"testing"
	"time"
)

func TestGossipDeliversBetweenThreeHosts(t *testing.T) {
	const run, batches, count = "gossip", 20, 64
	ps := []*testPeer{}
	for range 3 {
		// No anti-entropy rounds: this test is about the gossip path alone.
		ps = append(ps, newTestPeer(t, run, func(o *Options) { o.SyncInterval = time.Hour }))
	}
	connectAll(t, ps...)
	waitMesh(t, ps...)
	for i, p := range ps {
		p.publish(t, uint64(i)*1000, batches, count)
	}
	want := len(ps) * batches * count
	waitFor(t, "gossip delivery", func() bool {
		for _, p := range ps {
			if p.log.Count() != want {
				return false
			}
		}
		return true
	})
	for _, p := range ps {
		if d := p.log.Digest(); d != ps[0].log.Digest() {
			t.Errorf("peer %s digest %v, want %v", p.ID(), d, ps[0].log.Digest())
		}
		st := p.Stats()
		if st.GossipAccepted == 0 || st.GossipRejected != 0 || st.Published != batches {
			t.Errorf("peer %s stats %+v", p.ID(), st)
		}
	}
}

// TestAntiEntropyUnderLoss drops 20% of inbound gossip everywhere; anti-entropy
// must still bring every log to the same set.
func TestAntiEntropyUnderLoss(t *testing.T) {
	const run, batches, count = "loss", 30, 64
	var ps []*testPeer
	for range 4 {
		ps = append(ps, newTestPeer(t, run, func(o *Options) { o.DropInbound = 0.2 }))
	}
	connectAll(t, ps...)
	waitMesh(t, ps...)
	for i, p := range ps {
		p.publish(t, uint64(i)*(1<<40), batches, count)
	}
	want := len(ps) * batches * count
	waitFor(t, "convergence", func() bool {
		for _, p := range ps {
			if p.log.Count() != want || p.log.Digest() != ps[0].log.Digest() {
				return false
			}
		}
		return true
	})
	var fetched, ignored uint64
	for _, p := range ps {
		fetched += p.Stats().SyncFetched
		ignored += p.Stats().GossipIgnored
	}
	if fetched == 0 || ignored == 0 {
		t.Errorf("fetched %d batches by sync, %d ignored: loss was not simulated", fetched, ignored)
	}
	t.Logf("%d batches repaired by anti-entropy", fetched)
}

// TestJoinerPullsFromSeveralDonors: a peer joining late gets the whole log by
// sync alone, split across donors.
func TestJoinerPullsFromSeveralDonors(t *testing.T) {
	const run = "join"
	quiet := func(o *Options) { o.SyncInterval = time.Hour }
	var donors []*testPeer
	for range 3 {
		donors = append(donors, newTestPeer(t, run, quiet))
	}
	// Three machines' histories, 12 288 updates each, held by every donor.
	for _, src := range donors {
		for i := 0; i < 48; i++ {
			b, err := SignBatch(src.key, src.run, uint64(i*256), 3, testCodes(256, i))
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range donors {
				d.log.Store(b)
			}
		}
	}
	joiner := newTestPeer(t, run, quiet)
	connectAll(t, append(donors, joiner)...)
	waitFor(t, "sync protocol known", func() bool { return len(joiner.syncPeers()) == len(donors) })
	want := donors[0].log.Count()
	// Rounds also start on their own when peers join: just drive them on.
	waitFor(t, "joiner holds the log", func() bool {
		joiner.SyncNow(context.Background())
		return joiner.log.Count() == want
	})
	if joiner.log.Digest() != donors[0].log.Digest() {
		t.Fatal("joiner's set differs from the donors'")
	}
	serving := 0
	for _, d := range donors {
		if d.Stats().SyncServed > 1 { // more than the digest
			serving++
		}
	}
	if serving < 2 {
		t.Errorf("%d donors served fetches, want several", serving)
	}
}
