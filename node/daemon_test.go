package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/model/defaults"
	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// lockedBuf is a log sink the daemon and the test share.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testNet is a run whose peers are node.Start goroutines in this process,
// on loopback, sharing the embedded default model.
type testNet struct {
	t     *testing.T
	dir   string
	s     Settings
	m     store.Manifest
	peers []*testDaemon
}

type testDaemon struct {
	name   string
	home   string
	s      Settings
	ps     PeerSettings
	log    *lockedBuf
	cancel context.CancelFunc
	done   chan error
	api    string
	addr   string // bootstrap multiaddr
	err    error
	ended  bool
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	dir := t.TempDir()
	mdir := filepath.Join(dir, "model")
	if err := defaults.WriteTo(mdir); err != nil {
		t.Fatal(err)
	}
	s := Defaults
	s.Model, s.Data, s.EvalData = mdir, filepath.Join(mdir, defaults.TrainFile), filepath.Join(mdir, defaults.EvalFile)
	s.BatchSize, s.Samples, s.EvalEvery, s.CkptEvery, s.Steps = 2, 4, 1000, 0, 0
	m, err := NewManifest(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNet{t: t, dir: dir, s: s, m: m}
	t.Cleanup(func() {
		for _, p := range n.peers {
			p.stop()
		}
		if t.Failed() {
			for _, p := range n.peers {
				t.Logf("--- %s log:\n%s", p.name, tailLines(p.log.String(), 60))
			}
		}
	})
	return n
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// home creates a peer's home with the run's manifest.
func (n *testNet) home(name string) string {
	h := filepath.Join(n.dir, name)
	if err := os.MkdirAll(h, 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := WriteManifest(filepath.Join(h, ManifestFile), n.m); err != nil {
		n.t.Fatal(err)
	}
	return h
}

func testPeerSettings() PeerSettings {
	ps := PeerDefaults
	ps.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	ps.MDNS, ps.DHT, ps.RelayClient, ps.HolePunching = false, false, false, false
	ps.API = "127.0.0.1:0"
	ps.StateEvery, ps.SyncEvery = 200*time.Millisecond, 200*time.Millisecond
	return ps
}

// start runs Start on home with steps (0: unlimited, -1: serve only),
// bootstrapping to boot, and waits until it serves its API with a peer ID.
func (n *testNet) start(name, home string, steps int, boot []string, tweak func(*PeerSettings)) *testDaemon {
	n.t.Helper()
	s := n.s
	s.Home, s.Steps = home, steps
	ps := testPeerSettings()
	ps.Bootstrap = boot
	if tweak != nil {
		tweak(&ps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &testDaemon{name: name, home: home, s: s, ps: ps, log: &lockedBuf{}, cancel: cancel, done: make(chan error, 1)}
	os.Remove(filepath.Join(home, APIAddrFile))
	log := slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { p.done <- Start(ctx, s, ps, log) }()
	n.peers = append(n.peers, p)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if b, err := os.ReadFile(filepath.Join(home, APIAddrFile)); err == nil && strings.TrimSpace(string(b)) != "" {
			p.api = strings.TrimSpace(string(b))
			break
		}
		select {
		case err := <-p.done:
			p.ended, p.err = true, err
			n.t.Fatalf("%s ended during start-up: %v\n%s", name, err, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s did not start", name)
		}
	}
	st := p.status(n.t)
	p.addr = st.Addrs[0]
	return p
}

func (p *testDaemon) status(t *testing.T) Status {
	t.Helper()
	var st Status
	resp, err := http.Get("http://" + p.api + "/api/status")
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	return st
}

// wait polls the status until ok holds, failing the test after limit.
func (p *testDaemon) wait(t *testing.T, limit time.Duration, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st := p.status(t)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not within %v; status: state %s, updates %d, own %d, contributing %v, catching up %v",
				p.name, what, limit, st.State, st.Updates, st.OwnUpdates, st.Contributing, st.CatchingUp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop cancels the daemon and returns what Start returned.
func (p *testDaemon) stop() error {
	if !p.ended {
		p.cancel()
		select {
		case p.err = <-p.done:
		case <-time.After(time.Minute):
			p.err = errors.New("did not stop within a minute")
		}
		p.ended = true
	}
	return p.err
}

// fillLog writes n updates of a fresh machine, signed in batches of 64, into
// the store in home, as if a peer had made them, and returns the machine.
func (n *testNet) fillLog(home string, count int) uint64 {
	n.t.Helper()
	key, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		n.t.Fatal(err)
	}
	raw, _ := pub.Raw()
	machine := p2p.MachineOf(raw)
	st, err := store.Open(context.Background(), filepath.Join(home, "store"), n.m)
	if err != nil {
		n.t.Fatal(err)
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for first := 0; first < count; first += 64 {
		k := min(64, count-first)
		g, u, codes := make([]float64, k), make([]float64, k), make([]int8, k)
		for i := range g {
			g[i], u[i] = rng.NormFloat64()*0.5, rng.Float64()
		}
		exp, err := zo.Quantize(g, u, codes)
		if err != nil {
			n.t.Fatal(err)
		}
		b, err := p2p.SignBatch(key, p2p.NewRunTag(n.m.Run), uint64(first), exp, codes)
		if err != nil {
			n.t.Fatal(err)
		}
		if _, err := st.AppendBatch(context.Background(), b.Raw, b.Updates()...); err != nil {
			n.t.Fatal(err)
		}
	}
	return machine
}

// arrivalsBeforeOwn opens a stopped peer's store and counts the updates of
// machine that arrived before the peer's first own update (all of them if it
// made none), and the peer's own updates.
func arrivalsBeforeOwn(t *testing.T, home string, m store.Manifest, self, machine uint64) (before, own uint64) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(home, "store"), m)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for e, err := range st.Since(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		switch e.Update.Machine {
		case self:
			own++
		case machine:
			if own == 0 {
				before++
			}
		}
	}
	return before, own
}

func machineOf(t *testing.T, st Status) uint64 {
	t.Helper()
	m, err := strconv.ParseUint(st.Machine, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
