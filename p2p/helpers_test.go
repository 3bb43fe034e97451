package p2p

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/zo"
)

// memLog is the in-memory Log the tests use: what a node's store must do.
type memLog struct {
	mu      sync.Mutex
	ups     map[[2]uint64]zo.Update
	holds   map[uint64]Ranges
	batches map[uint64][]*Batch // per machine, by First
	digest  zo.SetDigest
	mdig    map[uint64]zo.SetDigest
	excl    map[uint64][]byte // machine -> evidence
}

func newMemLog() *memLog {
	return &memLog{ups: map[[2]uint64]zo.Update{}, holds: map[uint64]Ranges{}, batches: map[uint64][]*Batch{},
		mdig: map[uint64]zo.SetDigest{}, excl: map[uint64][]byte{}}
}

func (l *memLog) Excluded(m uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.excl[m] != nil
}

func (l *memLog) Exclusions() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]uint64, 0, len(l.excl))
	for m := range l.excl {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (l *memLog) Evidence(m uint64) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev, ok := l.excl[m]
	return ev, ok
}

// exclude drops machine ev.Machine as a node's store does.
func (l *memLog) exclude(ev *Evidence) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.excl[ev.Machine] != nil {
		return false
	}
	l.excl[ev.Machine] = ev.Raw
	for k, u := range l.ups {
		if k[0] == ev.Machine {
			l.digest.Sub(u)
			delete(l.ups, k)
		}
	}
	l.digest.AddHash(zo.ExclusionHash(ev.Machine))
	delete(l.holds, ev.Machine)
	delete(l.batches, ev.Machine)
	delete(l.mdig, ev.Machine)
	return true
}

func (l *memLog) Get(m, s uint64) (zo.Update, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.ups[[2]uint64{m, s}]
	return u, ok, nil
}

func (l *memLog) Holdings() ([]Holding, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := make([]Holding, 0, len(l.holds))
	for m, rs := range l.holds {
		d := l.mdig[m]
		hs = append(hs, Holding{Machine: m, Samples: append(Ranges(nil), rs...), Digest: binary.BigEndian.Uint64(d[:8])})
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].Machine < hs[j].Machine })
	return hs, nil
}

func (l *memLog) Batches(m, lo, hi uint64, max int) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	n := 0
	for _, b := range l.batches[m] {
		if b.Last() < lo || b.First > hi {
			continue
		}
		out = append(out, b.Raw)
		if n += len(b.Codes); max > 0 && n >= max {
			break
		}
	}
	return out, nil
}

// store adds b's new updates, all or nothing: it refuses a batch that
// conflicts with the log, as a node's store must.
func (l *memLog) store(b *Batch) (added int, conflict bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.excl[b.Machine] != nil {
		return 0, false
	}
	for _, u := range b.Updates() {
		if h, ok := l.ups[[2]uint64{u.Machine, u.Sample}]; ok && h != u {
			return 0, true
		}
	}
	for _, u := range b.Updates() {
		k := [2]uint64{u.Machine, u.Sample}
		if _, ok := l.ups[k]; ok {
			continue
		}
		l.ups[k] = u
		l.digest.Add(u)
		d := l.mdig[u.Machine]
		d.Add(u)
		l.mdig[u.Machine] = d
		l.holds[u.Machine] = l.holds[u.Machine].Add(u.Sample, u.Sample)
		added++
	}
	if added > 0 {
		bs := append(l.batches[b.Machine], b)
		sort.Slice(bs, func(i, j int) bool { return bs[i].First < bs[j].First })
		l.batches[b.Machine] = bs
	}
	return added, false
}

func (l *memLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ups)
}

func (l *memLog) sum() zo.SetDigest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.digest
}

// testPeer is a Peer on 127.0.0.1 with a memLog and a goroutine storing what
// it delivers, as a node would.
type testPeer struct {
	*Peer
	log    *memLog
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
	log := newMemLog()
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
			if _, conflict := log.store(b); conflict {
				p.ReportEquivocation(Equivocation{Machine: b.Machine, Sample: b.First, Batch: b.Raw})
			}
		}
	}()
	evDone := make(chan struct{})
	go func() { // a node's handling of evidence: exclude, then tell everyone
		defer close(evDone)
		for ev := range p.Evidences() {
			if log.exclude(ev) {
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
		tp.log.store(b)
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
