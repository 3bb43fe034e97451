package zo

import (
	"fmt"
	"math"
)

// Loss is one forward pass on one mini-batch: the mean loss under the weights'
// current float32 views. The engine sets the views before each call.
type Loss interface {
	Loss() (float64, error)
}

// StepResult is the outcome of one SPSA step.
type StepResult struct {
	G         float64 // projected gradient (L+ − L−)/2ε
	LossPlus  float64
	LossMinus float64
}

// Step estimates the projected gradient along z(s) with two forward passes, at
// θ+εz and θ−εz, derived from the canonical weights, which Step never
// touches, so no residue is left behind. Forward passes read the perturbed
// values through FillView (derived on the fly, layer by layer); tensors that
// still hold a materialised View get it overwritten with the perturbed view,
// which the next SyncViews re-derives.
func (e *Engine) Step(loss Loss, s Seed) (StepResult, error) {
	var r StepResult
	var err error
	defer func() { e.view = viewState{} }()
	e.setView(s, +1)
	if r.LossPlus, err = loss.Loss(); err != nil {
		return r, fmt.Errorf("zo: step: loss at θ+εz: %w", err)
	}
	e.setView(s, -1)
	if r.LossMinus, err = loss.Loss(); err != nil {
		return r, fmt.Errorf("zo: step: loss at θ−εz: %w", err)
	}
	r.G = (r.LossPlus - r.LossMinus) / (2 * e.cfg.Eps)
	if math.IsNaN(r.G) || math.IsInf(r.G, 0) {
		return r, fmt.Errorf("zo: step: losses %g and %g: %w", r.LossPlus, r.LossMinus, ErrNonFinite)
	}
	return r, nil
}

// setView makes the next forward pass see θ + sign·εz(s).
func (e *Engine) setView(s Seed, sign int32) {
	e.view = viewState{on: true, seed: s, sign: sign}
	for _, t := range e.w.Tensors {
		if t.Trainable && t.View != nil {
			e.stale = true
			e.perturb(s, sign)
			return
		}
	}
}

// perturb writes View = (Q + sign·εQ·zInt)·2^−Exp for every trainable tensor
// that holds a materialised View.
func (e *Engine) perturb(s Seed, sign int32) {
	e.w.forChunks(func(_ int, t *Tensor) bool { return t.Trainable && t.View != nil }, func(ti int, t *Tensor, lo, hi int) {
		perturbedView(t, s, sign*e.epsQ[ti], e.cfg.Dist, lo, t.Q[lo:hi], t.View[lo:hi])
	})
}
