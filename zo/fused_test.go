package zo

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// patternLoss reads views through FillView in an access pattern drawn from
// (seed, pass): small ranges anywhere (an embedding's looked-up rows, ahead of
// what a fused pass has written), tensors whole and in consecutive chunks (a
// head read chunk by chunk), overlapping and repeated ranges, tensors in a
// random order, some read only in part and some not at all. Two engines given
// the same seed read the same ranges; each pass records a digest of every
// value read.
type patternLoss struct {
	e       *Engine
	seed    uint64
	passes  int
	digests [][32]byte
	failAt  int // > 0: the pass that fails, after reading
}

var errPatternFail = errors.New("pattern loss fails")

func (p *patternLoss) Loss() (float64, error) {
	p.passes++
	rng := rand.New(rand.NewPCG(p.seed, uint64(p.passes)))
	h := sha256.New()
	var sum float64
	read := func(ti, lo, hi int) {
		v := make([]float32, hi-lo)
		p.e.FillView(ti, lo, v)
		binary.Write(h, binary.LittleEndian, [3]int64{int64(ti), int64(lo), int64(hi)})
		binary.Write(h, binary.LittleEndian, v)
		for _, x := range v {
			sum += float64(x) * float64(x)
		}
	}
	ts := p.e.w.Tensors
	for _, ti := range rng.Perm(len(ts)) {
		n := ts[ti].Len()
		for range rng.IntN(4) { // ranges anywhere, before anything else
			lo := rng.IntN(n)
			read(ti, lo, lo+rng.IntN(min(n-lo, 300)+1))
		}
		switch rng.IntN(4) {
		case 0: // whole
			read(ti, 0, n)
		case 1: // consecutive chunks from 0, sizes not multiples of 128
			step := 1 + rng.IntN(max(1, n/3))
			for lo := 0; lo < n; lo += step {
				read(ti, lo, min(n, lo+step))
			}
		case 2: // a prefix, then an overlapping range past it
			a := rng.IntN(n + 1)
			read(ti, 0, a)
			b := rng.IntN(a + 1)
			read(ti, b, b+rng.IntN(n-b+1))
		case 3: // not at all
		}
	}
	binary.Write(h, binary.LittleEndian, sum)
	p.digests = append(p.digests, [32]byte(h.Sum(nil)))
	if p.passes == p.failAt {
		return 0, errPatternFail
	}
	return sum / 1e6, nil
}

func engineState(e *Engine) string {
	tensors, elems := e.w.Overflow()
	q := make([]int64, len(e.w.Tensors))
	for i, t := range e.w.Tensors {
		q[i] = t.qmax
	}
	return fmt.Sprintf("hash %x overflow %d/%d bounds %v", e.w.Hash(), tensors, elems, q)
}

// ApplyStep gives bit for bit what Apply then Step gives: the views both
// passes read in any access pattern, the step's result, and afterwards the
// weights, the overflow verdict and the engine's bounds on max|Q|; nothing
// stays pending. Random updates in random batch sizes (none, one, several,
// more than 16 seeds), both distributions (Gauss4 applies first), a pool-mode
// run, block-coordinate steps, streamed and materialised views, both kernel
// sets. The same updates applied at the end in one shuffled batch give the
// same weights.
func TestApplyStepMatchesApplyThenStep(t *testing.T) {
	steps := 8
	if testing.Short() {
		steps = 5
	}
	cfgs := []Config{
		{Run: "test-run", Eps: 1e-3, LR: 1e-2},
		{Run: "test-run", Eps: 1e-3, LR: 1e-2, Dist: Gauss4},
		{Run: "test-run", Eps: 1e-3, LR: 1e-2, Pool: 4},
		{Run: "test-run", Eps: 1e-3, LR: 1e-2, Estimator: Estimator{Parts: 3}},
	}
	forEachKernel(t, func(t *testing.T) {
		for ci, cfg := range cfgs {
			for _, streamed := range []bool{true, false} {
				t.Run(fmt.Sprintf("cfg%d/streamed=%v", ci, streamed), func(t *testing.T) {
					engines := make([]*Engine, 3) // fused, apply then step, one batch at the end
					for i := range engines {
						e, err := NewEngine(cfg, viewWeights(t, 5))
						if err != nil {
							t.Fatal(err)
						}
						if streamed {
							e.w.DropViews()
						}
						engines[i] = e
					}
					a, b, c := engines[0], engines[1], engines[2]
					rng := rand.New(rand.NewPCG(uint64(ci), 3))
					var all []Update
					sample := uint64(0)
					for step := range steps {
						us := make([]Update, []int{0, 1, 1, 3, 20}[rng.IntN(5)])
						for i := range us {
							us[i] = Update{Machine: uint64(rng.IntN(4)), Sample: sample, Exp: uint8(118 + rng.IntN(8)), Code: int8(rng.IntN(255) - 127)}
							sample++
						}
						if step%3 == 2 && len(us) > 0 {
							us[0].Code = 0 // every coefficient 0: nothing to apply for it
						}
						all = append(all, us...)
						s := cfg.PerturbSeed(9, uint64(step))
						la := &patternLoss{e: a, seed: uint64(step)}
						ra, err := a.ApplyStep(us, la, s)
						if err != nil {
							t.Fatal(err)
						}
						b.Apply(us)
						lb := &patternLoss{e: b, seed: uint64(step)}
						rb, err := b.Step(lb, s)
						if err != nil {
							t.Fatal(err)
						}
						if ra != rb || !slices.Equal(la.digests, lb.digests) {
							t.Fatalf("step %d (%d updates): fused %+v, apply then step %+v; views equal %v", step, len(us), ra, rb, slices.Equal(la.digests, lb.digests))
						}
						if a.pend != nil {
							t.Fatalf("step %d: an apply is still pending after ApplyStep", step)
						}
						if sa, sb := engineState(a), engineState(b); sa != sb {
							t.Fatalf("step %d: fused %s, apply then step %s", step, sa, sb)
						}
						// The canonical view outside a step (evaluation) agrees too.
						la.passes, lb.passes = 10, 10
						la.Loss()
						lb.Loss()
						if la.digests[len(la.digests)-1] != lb.digests[len(lb.digests)-1] {
							t.Fatalf("step %d: canonical views differ", step)
						}
					}
					rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
					c.Apply(all)
					if a.w.Hash() != c.w.Hash() {
						t.Fatal("fused applies and one batch of the same updates give different weights")
					}
				})
			}
		}
	})
}

// When the step fails, ApplyStep has still applied every update exactly.
func TestApplyStepFailingLoss(t *testing.T) {
	for _, failAt := range []int{1, 2} {
		cfg := Config{Run: "test-run", Eps: 1e-3, LR: 1e-2}
		a, err := NewEngine(cfg, viewWeights(t, 6))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewEngine(cfg, viewWeights(t, 6))
		if err != nil {
			t.Fatal(err)
		}
		a.w.DropViews()
		b.w.DropViews()
		us := randomUpdates(rand.New(rand.NewPCG(6, 6)), 4)
		if _, err := a.ApplyStep(us, &patternLoss{e: a, seed: 1, failAt: failAt}, DeriveSeed("test-run", 1, 1)); !errors.Is(err, errPatternFail) {
			t.Fatalf("fail at pass %d: err %v", failAt, err)
		}
		b.Apply(us)
		if a.pend != nil || engineState(a) != engineState(b) {
			t.Fatalf("fail at pass %d: fused %s, applied %s", failAt, engineState(a), engineState(b))
		}
	}
}

// Near the int32 limit the apply takes the exact path, before the passes
// (never deferred): weights, wrap counts and the overflow verdict are
// Apply's, and so are the views the passes read.
func TestApplyStepExactPath(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		cfg := Config{Run: "test-run", Eps: 1e-3, LR: 1e3}
		engines := make([]*Engine, 2)
		for i := range engines {
			e, err := NewEngine(cfg, viewWeights(t, 8))
			if err != nil {
				t.Fatal(err)
			}
			e.w.DropViews()
			for _, tn := range e.w.Tensors[1:3] { // one tensor at the edge, one not
				for j := 0; j < tn.Len(); j += 7 {
					tn.Q[j] = math.MaxInt32 - int32(j%5)
				}
			}
			e.w.Tensors[1].Q[1] = math.MinInt32 + 3
			e.w.SyncViews()
			engines[i] = e
		}
		a, b := engines[0], engines[1]
		for step := range 3 {
			us := randomUpdates(rand.New(rand.NewPCG(8, uint64(step))), 6)
			s := DeriveSeed("test-run", 2, uint64(step))
			la, lb := &patternLoss{e: a, seed: 7}, &patternLoss{e: b, seed: 7}
			ra, erra := a.ApplyStep(us, la, s)
			b.Apply(us)
			rb, errb := b.Step(lb, s)
			if ra != rb || (erra == nil) != (errb == nil) || !slices.Equal(la.digests, lb.digests) {
				t.Fatalf("step %d: fused %+v %v, apply then step %+v %v", step, ra, erra, rb, errb)
			}
			if sa, sb := engineState(a), engineState(b); sa != sb {
				t.Fatalf("step %d: fused %s, apply then step %s", step, sa, sb)
			}
		}
		if _, elems := a.w.Overflow(); elems == 0 {
			t.Fatal("the test never wrapped an element: it does not reach the exact path")
		}
	})
}
