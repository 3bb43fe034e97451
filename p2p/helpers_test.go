package p2p

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// testPeer is a Peer on 127.0.0.1 with a MemLog and a goroutine storing what
// it delivers, as a node would.
type testPeer struct {
	*Peer
	log    *MemLog
	key    crypto.PrivKey
	states chan State // what the peer's States channel delivered
}

func testOptions(t testing.TB, run string, log Log) Options {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Run = run
	o.Key = key
	o.Log = log
	o.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	o.MDNS, o.DHT, o.RelayClient, o.HolePunching = false, false, false, false
	o.RelayService, o.NATService, o.AutoNATv2 = false, false, false
	o.SyncInterval = 200 * time.Millisecond
	o.SyncTimeout = 10 * time.Second
	o.Logger = testLogger()
	return o
}

func testLogger() *slog.Logger {
	if os.Getenv("P2P_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestPeer(t testing.TB, run string, edit func(*Options)) *testPeer {
	t.Helper()
	log := NewMemLog()
	o := testOptions(t, run, log)
	if edit != nil {
		edit(&o)
	}
	p, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPeer{Peer: p, log: log, key: o.Key, states: make(chan State, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range p.Batches() {
			if _, conflict := log.Store(b); conflict {
				p.ReportEquivocation(Equivocation{Machine: b.Machine, Sample: b.First, Batch: b.Raw})
			}
		}
	}()
	evDone := make(chan struct{})
	go func() { // a node's handling of evidence: exclude, then tell everyone
		defer close(evDone)
		for ev := range p.Evidences() {
			if log.Exclude(ev) {
				p.PublishEvidence(context.Background(), ev)
			}
		}
	}()
	go func() {
		for s := range p.States() {
			select {
			case tp.states <- s:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		<-done
		<-evDone
	})
	return tp
}

// publish signs, stores and gossips n batches of count updates from sample first.
func (tp *testPeer) publish(t testing.TB, first uint64, n, count int) {
	t.Helper()
	for i := 0; i < n; i++ {
		b, err := tp.NewBatch(first+uint64(i*count), 10, testCodes(count, i))
		if err != nil {
			t.Fatal(err)
		}
		tp.log.Store(b)
		if err := tp.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

func testCodes(n, salt int) []int8 {
	c := make([]int8, n)
	for i := range c {
		c[i] = int8((i*7+salt*13)%255 - 127)
	}
	return c
}

func connectAll(t testing.TB, ps ...*testPeer) {
	t.Helper()
	for i := range ps {
		for j := i + 1; j < len(ps); j++ {
			if err := ps[i].Connect(context.Background(), ps[j].Addrs()[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// waitFor polls cond until it holds or a generous timeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMesh waits until every peer has every other in its gossip mesh, or
// at least Dlo of them: gossipsub grafts more only below Dlo, so with D = 3
// four peers may settle at two mesh peers each (a connected mesh still).
func waitMesh(t testing.TB, ps ...*testPeer) {
	t.Helper()
	waitFor(t, "gossip mesh", func() bool {
		for _, p := range ps {
			if p.Stats().MeshPeers < min(len(ps)-1, meshParams(p.opts.MeshDegree).Dlo) {
				return false
			}
		}
		return true
	})
}
