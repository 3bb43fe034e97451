package zo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// viewWeights adds to testWeights' awkward sizes a tensor large enough for
// FillView to split across goroutines.
func viewWeights(t testing.TB, seed uint64) *Weights {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	w := testWeights(t, rng)
	var specs []TensorSpec
	for _, tn := range w.Tensors {
		specs = append(specs, TensorSpec{Name: tn.Name, Shape: tn.Shape, Data: append([]float32(nil), tn.View...), Trainable: tn.Trainable})
	}
	big := make([]float32, 3*fillParallelMin+77)
	for i := range big {
		big[i] = 0.1 * float32(rng.NormFloat64())
	}
	specs = append(specs, TensorSpec{Name: "big", Shape: []int{len(big)}, Data: big, Trainable: true})
	w, err := NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// checkFill compares FillView over the whole tensor and over random ranges
// with what each tensor's materialised View holds, bit for bit.
func checkFill(t *testing.T, e *Engine, rng *rand.Rand, when string) {
	t.Helper()
	for ti, tn := range e.w.Tensors {
		ranges := [][2]int{{0, tn.Len()}}
		for range 8 {
			lo := rng.IntN(tn.Len())
			ranges = append(ranges, [2]int{lo, lo + rng.IntN(tn.Len()-lo+1)})
		}
		for _, r := range ranges {
			got := make([]float32, r[1]-r[0])
			e.FillView(ti, r[0], got)
			for i, v := range got {
				if math.Float32bits(v) != math.Float32bits(tn.View[r[0]+i]) {
					t.Fatalf("%s: tensor %s [%d, %d): element %d is %v, the view holds %v", when, tn.Name, r[0], r[1], r[0]+i, v, tn.View[r[0]+i])
				}
			}
		}
	}
}

type checkingLoss struct {
	t   *testing.T
	e   *Engine
	rng *rand.Rand
	n   int
}

func (c *checkingLoss) Loss() (float64, error) {
	c.n++
	checkFill(c.t, c.e, c.rng, fmt.Sprintf("pass %d", c.n))
	return float64(c.n), nil
}

// The streamed view (FillView) is the materialised one bit for bit: the
// canonical view outside a step, θ+εz and θ−εz during its two passes, on
// any range, with both distributions and both kernel sets.
func TestFillViewMatchesViews(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		for _, d := range []Dist{Rademacher, Gauss4} {
			e, err := NewEngine(Config{Run: "test-run", Dist: d, Eps: 1e-3, LR: 1e-2}, viewWeights(t, 7))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, 7))
			checkFill(t, e, rng, "base")
			loss := &checkingLoss{t: t, e: e, rng: rng}
			for i := range 3 {
				if _, err := e.Step(loss, DeriveSeed("test-run", 4, uint64(i))); err != nil {
					t.Fatal(err)
				}
				e.Apply(randomUpdates(rng, 3))
			}
			e.SyncViews()
			checkFill(t, e, rng, "after the steps")
		}
	})
}

// fillLoss is quadLoss read through FillView, as a streamed forward pass reads.
type fillLoss struct {
	e      *Engine
	target []float64
}

func (f *fillLoss) Loss() (float64, error) {
	var s float64
	k := 0
	for ti, tn := range f.e.w.Tensors {
		v := make([]float32, tn.Len())
		f.e.FillView(ti, 0, v)
		for _, x := range v {
			d := float64(x) - f.target[k]
			s += float64(d * d)
			k++
		}
	}
	return s / float64(2*k), nil
}

// After DropViews the weights hold Q alone; steps, applies, hashes and
// SyncViews give exactly what they give with materialised views.
func TestDropViews(t *testing.T) {
	for _, d := range []Dist{Rademacher, Gauss4} {
		cfg := Config{Run: "test-run", Dist: d, Eps: 1e-3, LR: 1e-2}
		a, err := NewEngine(cfg, viewWeights(t, 9))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewEngine(cfg, viewWeights(t, 9))
		if err != nil {
			t.Fatal(err)
		}
		ql := newQuadLoss(a.w, rand.New(rand.NewPCG(9, 9)), 0.01)
		b.w.DropViews()
		fl := &fillLoss{e: b, target: ql.target}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 4 {
			s := DeriveSeed("test-run", 2, uint64(i))
			ra, err := a.Step(ql, s)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := b.Step(fl, s)
			if err != nil {
				t.Fatal(err)
			}
			if ra != rb {
				t.Fatalf("%v step %d: %+v with views, %+v streamed", d, i, ra, rb)
			}
			us := randomUpdates(rng, 5)
			a.Apply(us)
			b.Apply(us)
			a.SyncViews()
			b.SyncViews()
		}
		if a.w.Hash() != b.w.Hash() {
			t.Fatalf("%v: weights differ", d)
		}
		for _, tn := range b.w.Tensors {
			if tn.View != nil {
				t.Fatalf("%v: %s has a view again", d, tn.Name)
			}
		}
	}
}

// HashOf and SetQ read the canonical little-endian layout: the bytes of the
// weights hash to Hash, set back give the same weights, and a wrong length
// is refused.
func TestHashOfAndSetQ(t *testing.T) {
	w := testWeights(t, rand.New(rand.NewPCG(5, 6)))
	var raw []byte
	for _, tn := range w.Tensors {
		raw = append(raw, LittleEndianInt32s(tn.Q)...)
	}
	if h, err := w.HashOf(raw); err != nil || h != w.Hash() {
		t.Fatalf("HashOf: %v", err)
	}
	want := w.Hash()
	raw[5] ^= 1
	if h, _ := w.HashOf(raw); h == want {
		t.Fatal("a changed byte hashes the same")
	}
	v := testWeights(t, rand.New(rand.NewPCG(5, 6)))
	v.Tensors[0].Q[0]++
	raw[5] ^= 1
	if err := v.SetQ(raw); err != nil || v.Hash() != want {
		t.Fatalf("SetQ: %v", err)
	}
	if _, err := w.HashOf(raw[1:]); err == nil || v.SetQ(raw[4:]) == nil {
		t.Fatal("a short layout was accepted")
	}
}
