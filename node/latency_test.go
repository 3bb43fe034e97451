package node

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/defaults"
	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
)

// latencyPeer is the receiving half of a daemon: a p2p peer whose batches go
// through Trainer.Apply (log durably on disk, then apply on the default model).
func latencyPeer(b *testing.B, m store.Manifest, dir string) (*p2p.Peer, *Trainer) {
	b.Helper()
	ctx := context.Background()
	lm, err := model.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	eng := newEngine(b, lm, m, "")
	log, err := store.Open(ctx, b.TempDir(), m)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { log.Close() })
	tr, _, err := NewTrainer(ctx, eng, lm, log, nil, nil, TrainerConfig{Machine: 1, BatchSize: 1, Samples: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		b.Fatal(err)
	}
	o := p2p.DefaultOptions()
	o.Run, o.Key, o.Log = m.Run, key, logAdapter{log}
	o.ListenAddrs, o.MDNS, o.DHT, o.RelayClient, o.HolePunching = []string{"/ip4/127.0.0.1/tcp/0"}, false, false, false, false
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := p2p.New(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p, tr
}

// BenchmarkPublishToApplied: one peer publishes a batch of 64 one-byte
// updates; the other receives it by gossip, verifies it, logs it durably in
// Badger and applies it to the default model. One batch in flight at a time,
// so ns/op is the latency from Publish to applied on loopback.
func BenchmarkPublishToApplied(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "m")
	if err := defaults.WriteTo(dir); err != nil {
		b.Fatal(err)
	}
	m := store.Manifest{Run: "latency", Dist: "rademacher", Eps: 1e-3, LR: 1e-4, Quant: quantScheme}
	src, _ := latencyPeer(b, m, dir)
	dst, tr := latencyPeer(b, m, dir)
	ctx := context.Background()
	if err := dst.Connect(ctx, src.Addrs()[0]); err != nil {
		b.Fatal(err)
	}
	codes := make([]int8, 64)
	for i := range codes {
		codes[i] = int8(i - 32)
	}
	next := uint64(0)
	send := func() time.Duration {
		bt, err := src.NewBatch(next, 120, codes)
		if err != nil {
			b.Fatal(err)
		}
		next += uint64(len(codes))
		start := time.Now()
		if err := src.Publish(ctx, bt); err != nil {
			b.Fatal(err)
		}
		select {
		case got := <-dst.Batches():
			if _, err := tr.Apply(ctx, got.Raw, got.Updates()); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		case <-time.After(time.Second):
			return 0 // the mesh is not formed yet: this batch reached nobody
		}
	}
	for deadline := time.Now().Add(30 * time.Second); send() == 0; {
		if time.Now().After(deadline) {
			b.Fatal("no gossip mesh after 30 s")
		}
	}
	var total time.Duration
	for b.Loop() {
		d := send()
		if d == 0 {
			b.Fatal("a batch was lost on an idle loopback link")
		}
		total += d
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/batch")
}
