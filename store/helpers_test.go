package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// testManifest is the run every test store belongs to.
func testManifest() Manifest {
	return Manifest{
		Run: "store-test", BaseDigest: sha256.Sum256([]byte("base")), Dist: "rademacher",
		Eps: 1e-3, LR: 1e-3, Quant: "int8-e8/fixed28", Params: map[string]string{"batch": "16"},
	}
}

// testSpecs is a small model with a frozen tensor and a length that is not
// a multiple of the engine's block and chunk sizes.
func testSpecs(scale int) []zo.TensorSpec {
	r := rand.New(rand.NewPCG(1, 2))
	mk := func(name string, trainable bool, shape ...int) zo.TensorSpec {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64() * 0.05)
		}
		return zo.TensorSpec{Name: name, Shape: shape, Data: data, Trainable: trainable}
	}
	return []zo.TensorSpec{
		mk("emb", true, 64*scale, 33),
		mk("ln", false, 77),
		mk("w", true, 40*scale, 50),
	}
}

// newEngine builds an engine on the base weights of testSpecs(scale).
func newEngine(tb testing.TB, scale int) *zo.Engine {
	tb.Helper()
	w, err := zo.NewWeights(testSpecs(scale))
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := testManifest().Config()
	if err != nil {
		tb.Fatal(err)
	}
	e, err := zo.NewEngine(cfg, w)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// upd is a deterministic update for (machine, sample), so that re-sending
// it is a duplicate; flip gives a contradicting value.
func upd(machine, sample uint64) zo.Update {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], machine)
	binary.LittleEndian.PutUint64(b[8:], sample)
	h := sha256.Sum256(b[:])
	return zo.Update{Machine: machine, Sample: sample, Exp: 118 + h[0]%4, Code: int8(int(h[1]%255) - 127)}
}

func flip(u zo.Update) zo.Update {
	if u.Code = -u.Code; u.Code == 0 {
		u.Code = 1
	}
	return u
}

// independentHash applies us to fresh base weights in a shuffled order and
// random batch sizes: what any peer holding the same set computes.
func independentHash(tb testing.TB, scale int, us []zo.Update) ([32]byte, *zo.Weights) {
	tb.Helper()
	e := newEngine(tb, scale)
	us = slices.Clone(us)
	r := rand.New(rand.NewPCG(uint64(len(us)), 7))
	r.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
	for len(us) > 0 {
		n := min(len(us), 1+r.IntN(100))
		e.Apply(us[:n])
		us = us[n:]
	}
	e.Weights().SyncViews()
	return e.Weights().Hash(), e.Weights()
}

// openTest opens a store in memory or in a fresh directory.
func openTest(tb testing.TB, disk bool, opts ...Option) (*Store, string) {
	tb.Helper()
	opts = append([]Option{WithLogger(testLogger(tb))}, opts...)
	if !disk {
		s, err := OpenMemory(testManifest(), opts...)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return s, ""
	}
	dir := tb.TempDir()
	return reopen(tb, dir, opts...), dir
}

func reopen(tb testing.TB, dir string, opts ...Option) *Store {
	tb.Helper()
	opts = append([]Option{WithLogger(testLogger(tb))}, opts...)
	s, err := Open(context.Background(), dir, testManifest(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func mustAppend(tb testing.TB, s *Store, us ...zo.Update) AppendResult {
	tb.Helper()
	res, err := s.Append(context.Background(), us...)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

func collect(tb testing.TB, s *Store, from Key) []zo.Update {
	tb.Helper()
	var out []zo.Update
	for u, err := range s.Updates(context.Background(), from) {
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func collectSince(tb testing.TB, s *Store, c Cursor) []Entry {
	tb.Helper()
	var out []Entry
	for e, err := range s.Since(context.Background(), c) {
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// corruptCkpt damages checkpoint c's stored bytes with fn.
func corruptCkpt(tb testing.TB, s *Store, c CheckpointInfo, fn func([]byte) []byte) {
	tb.Helper()
	switch b := s.cks.(type) {
	case *memBlobs:
		b.mu.Lock()
		b.files[c.File] = fn(slices.Clone(b.files[c.File]))
		b.mu.Unlock()
	case dirBlobs:
		p := filepath.Join(b.dir, c.File)
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, fn(data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func eqWeights(a, b *zo.Weights) bool {
	for i, t := range a.Tensors {
		u := b.Tensors[i]
		if t.Exp != u.Exp || !slices.Equal(t.Q, u.Q) || !slices.Equal(t.View, u.View) {
			return false
		}
	}
	return len(a.Tensors) == len(b.Tensors)
}

// testLogger shows the store's logs only for failed tests and with -v.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}
