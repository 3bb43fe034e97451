package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// TestCatchUpFigures measures how long a newcomer takes to rebuild the
// current weights of a GPT-2-small-shaped model (124M parameters) from a
// synthetic log, by full replay (a measured prefix, extrapolated) and by
// pool-mode replay (the whole log). It is a measurement, not a check, and
// runs only with ZOPEER_BENCH_CATCHUP set to the log sizes, e.g.
//
//	ZOPEER_BENCH_CATCHUP=100000,1000000 ZOPEER_BENCH_POOL=1024,4096 go test -run TestCatchUpFigures -v -timeout 60m ./node/
//
// (docs/BENCHMARKS.md, "Joining a long run").
func TestCatchUpFigures(t *testing.T) {
	sizes := envInts(t, "ZOPEER_BENCH_CATCHUP", "")
	if len(sizes) == 0 {
		t.Skip("set ZOPEER_BENCH_CATCHUP to log sizes to measure catch-up")
	}
	pools := envInts(t, "ZOPEER_BENCH_POOL", "1024,4096")
	prefix := envInts(t, "ZOPEER_BENCH_FULL_PREFIX", "512")[0]
	ctx := context.Background()
	cfg, err := model.ParseConfig([]byte(Shapes["gpt2-small"]))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := TrainableSpecs(model.NewRandom(cfg, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	w.DropViews()
	var params int
	base := make([][]int32, len(w.Tensors))
	for i, tn := range w.Tensors {
		base[i] = append([]int32(nil), tn.Q...)
		params += tn.Len()
	}
	reset := func() {
		for i, tn := range w.Tensors {
			copy(tn.Q, base[i])
		}
		w.SyncViews()
	}
	m := store.Manifest{Run: "catchup-bench", BaseDigest: w.Hash(), Dist: "rademacher", Eps: 1e-3, LR: 1e-6, Quant: quantScheme}
	t.Logf("GPT-2-small shape: %d parameters, %d tensors", params, len(w.Tensors))
	for _, n := range sizes {
		snapshotInstallFigure(t, ctx, m, w, n)
		for _, k := range append([]int{0}, pools...) {
			m.Pool = uint32(k)
			s, err := store.Open(ctx, t.TempDir(), m)
			if err != nil {
				t.Fatal(err)
			}
			fill := time.Now()
			logged := n
			if k == 0 {
				logged = min(n, prefix) // full replay: a prefix, extrapolated
			}
			fillLog(t, ctx, s, logged, 5)
			fillTime := time.Since(fill)
			mc, err := m.Config()
			if err != nil {
				t.Fatal(err)
			}
			reset()
			e, err := zo.NewEngine(mc, w)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res, err := s.Replay(ctx, e, store.ReplayOptions{FromBase: true})
			if err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			s.Close()
			load, _ := os.ReadFile("/proc/loadavg")
			if k == 0 {
				t.Logf("RESULT log=%d mode=full measured=%d updates in %.2fs (%.1f updates/s) extrapolated=%.0fs load=%s",
					n, res.Applied, el.Seconds(), float64(res.Applied)/el.Seconds(), el.Seconds()*float64(n)/float64(res.Applied), strings.Fields(string(load))[0])
			} else {
				t.Logf("RESULT log=%d mode=pool K=%d replay=%.2fs (log written in %.1fs) hash=%x load=%s",
					n, k, el.Seconds(), fillTime.Seconds(), res.Hash[:8], strings.Fields(string(load))[0])
			}
		}
	}
}

// snapshotInstallFigure measures what a joiner by snapshot does locally once
// it holds the weights bytes and the log of n updates: check the set digest
// of the snapshot's updates, set the weights, write them as a checkpoint and
// rebuild from it (Trainer.Install).
func snapshotInstallFigure(t *testing.T, ctx context.Context, m store.Manifest, w *zo.Weights, n int) {
	m.Pool = 0
	s, err := store.Open(ctx, t.TempDir(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fillLog(t, ctx, s, n, 6)
	var raw []byte
	for _, tn := range w.Tensors {
		raw = append(raw, zo.LittleEndianInt32s(tn.Q)...)
	}
	mc, err := m.Config()
	if err != nil {
		t.Fatal(err)
	}
	e, err := zo.NewEngine(mc, w)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	inc := s.Summary()
	if _, err := s.DigestOf(ctx, inc, nil); err != nil {
		t.Fatal(err)
	}
	digest := time.Since(start)
	tr := &Trainer{eng: e, log: s, held: true}
	res, err := tr.Install(ctx, raw, inc)
	if err != nil || res.Checkpoint == 0 || res.Applied != 0 {
		t.Fatalf("install: %v (checkpoint %d, applied %d)", err, res.Checkpoint, res.Applied)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("RESULT log=%d mode=snapshot-install digest_check=%.2fs install=%.2fs (set weights, write checkpoint, rebuild from it) load=%s",
		n, digest.Seconds(), (time.Since(start) - digest).Seconds(), strings.Fields(string(load))[0])
}

// fillLog appends n synthetic updates: 64 machines streaming their samples
// in turn, random codes at exponent 120.
func fillLog(t *testing.T, ctx context.Context, s *store.Store, n int, seed uint64) {
	rng := rand.New(rand.NewPCG(uint64(n), seed))
	for i := 0; i < n; i += 4096 {
		us := make([]zo.Update, min(4096, n-i))
		for j := range us {
			x := i + j
			us[j] = zo.Update{Machine: uint64(x % 64), Sample: uint64(x / 64), Exp: 120, Code: int8(rng.IntN(255) - 127)}
		}
		if _, err := s.Append(ctx, us...); err != nil {
			t.Fatal(err)
		}
	}
}

// envInts reads a comma-separated list of integers from the environment (def if unset).
func envInts(t *testing.T, name, def string) []int {
	t.Helper()
	v, ok := os.LookupEnv(name)
	if !ok {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		x, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(fmt.Errorf("%s: %w", name, err))
		}
		out = append(out, x)
	}
	return out
}
