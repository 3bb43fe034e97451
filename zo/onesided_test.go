package zo

import (
	"math"
	"math/rand/v2"
	"testing"
)

// A one-sided step is Step's + pass alone: its L+ is Step's bit for bit,
// its G is (L+ − base)/ε, BaseLoss is the loss at θ, and neither moves the
// canonical weights.
func TestStepOneSided(t *testing.T) {
	for _, d := range []Dist{Rademacher, Gauss4} {
		e := testEngine(t, d, 3)
		loss := newQuadLoss(e.w, rand.New(rand.NewPCG(3, 3)), 0.01)
		h0 := e.w.Hash()
		e.SyncViews()
		want, err := loss.Loss()
		if err != nil {
			t.Fatal(err)
		}
		base, err := e.BaseLoss(loss)
		if err != nil {
			t.Fatal(err)
		}
		if base != want {
			t.Fatalf("%v: BaseLoss %g, loss at θ %g", d, base, want)
		}
		for i := 0; i < 4; i++ {
			s := DeriveSeed("test-run", 9, uint64(i))
			two, err := e.Step(loss, s)
			if err != nil {
				t.Fatal(err)
			}
			one, err := e.StepOneSided(loss, s, base)
			if err != nil {
				t.Fatal(err)
			}
			if one.LossPlus != two.LossPlus || one.LossMinus != base {
				t.Fatalf("%v: one-sided L+ %g (Step's %g), L0 %g (want %g)", d, one.LossPlus, two.LossPlus, one.LossMinus, base)
			}
			if g := (two.LossPlus - base) / e.cfg.Eps; one.G != g {
				t.Fatalf("%v: G %g, want (L+ − L0)/ε = %g", d, one.G, g)
			}
			if again, _ := e.BaseLoss(loss); again != base {
				t.Fatalf("%v: the loss at θ moved after a step: %g, was %g", d, again, base)
			}
		}
		if e.w.Hash() != h0 {
			t.Fatalf("%v: one-sided steps changed the canonical weights", d)
		}
	}
	e := testEngine(t, Rademacher, 3)
	if _, err := e.StepOneSided(lossFunc(func() (float64, error) { return 1, nil }), DeriveSeed("x", 1, 1), math.Inf(1)); err == nil {
		t.Error("a non-finite base gave a finite step")
	}
}

// OneSided is validated, and is not MeZO.
func TestEstimatorOneSidedValidate(t *testing.T) {
	c := Config{Run: "r", Dist: Rademacher, Eps: 1e-3, LR: 1e-4}
	for _, q := range []int{1, 4, maxOneSided} {
		c.Estimator = Estimator{OneSided: q}
		if err := c.Validate(); err != nil || c.Estimator.IsZero() {
			t.Errorf("onesided %d: %v (zero %v)", q, err, c.Estimator.IsZero())
		}
	}
	for _, q := range []int{-1, maxOneSided + 1} {
		c.Estimator = Estimator{OneSided: q}
		if c.Validate() == nil {
			t.Errorf("onesided %d accepted", q)
		}
	}
	c.Estimator, c.Pool = Estimator{OneSided: 4}, 16
	if c.Validate() == nil {
		t.Error("onesided with a seed pool accepted")
	}
}
