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

// BaseLoss is one forward pass at the canonical weights θ: the shared base
// L0 of one-sided steps (Estimator.OneSided). Updates the engine defers are
// applied first.
func (e *Engine) BaseLoss(loss Loss) (float64, error) {
	e.SyncViews()
	l, err := loss.Loss()
	if err != nil {
		return 0, fmt.Errorf("zo: step: loss at θ: %w", err)
	}
	return l, nil
}

// StepOneSided estimates the projected gradient along z(s) by a forward
// difference from base, the loss at θ on the same mini-batch (BaseLoss):
// one forward pass at θ+εz, G = (L+ − base)/ε, LossMinus = base. Like
// Step, it leaves the canonical weights untouched.
func (e *Engine) StepOneSided(loss Loss, s Seed, base float64) (StepResult, error) {
	r := StepResult{LossMinus: base}
	var err error
	defer func() { e.view = viewState{} }()
	e.setView(s, +1)
	if r.LossPlus, err = loss.Loss(); err != nil {
		return r, fmt.Errorf("zo: step: loss at θ+εz: %w", err)
	}
	r.G = (r.LossPlus - base) / e.cfg.Eps
	if math.IsNaN(r.G) || math.IsInf(r.G, 0) {
		return r, fmt.Errorf("zo: step: losses %g and %g: %w", r.LossPlus, base, ErrNonFinite)
	}
	return r, nil
}

// StepTensor is Step with tensor ti alone perturbed (if the step would
// perturb it at all): the projected gradient along that tensor's part of
// z(s). It measures per-tensor gradient statistics (node's scale=grad
// estimator rule); updates never come from it.
func (e *Engine) StepTensor(loss Loss, s Seed, ti int) (StepResult, error) {
	if ti < 0 || ti >= len(e.w.Tensors) {
		return StepResult{}, fmt.Errorf("zo: step: no tensor %d", ti)
	}
	e.only = ti + 1
	defer func() { e.only = 0 }()
	return e.Step(loss, s)
}

// setView makes the next forward pass see θ + sign·εz(s).
func (e *Engine) setView(s Seed, sign int32) {
	e.view = viewState{on: true, seed: s, sign: sign, part: e.partOf(s)}
	for ti, t := range e.w.Tensors {
		if e.view.perturbs(e, ti) && t.View != nil {
			e.stale = true
			e.perturb(s, sign)
			return
		}
	}
}

// partOf is the estimator group the update with seed s perturbs; -1: all.
func (e *Engine) partOf(s Seed) int {
	if e.cfg.Estimator.Parts > 1 {
		return s.Part(e.cfg.Estimator.Parts)
	}
	return -1
}

// perturb writes View = (Q + sign·εQ·zInt)·2^−Exp for every tensor the
// step perturbs that holds a materialised View. Views of tensors outside
// the update's estimator group keep their canonical values.
func (e *Engine) perturb(s Seed, sign int32) {
	v := viewState{on: true, part: e.partOf(s)}
	e.w.forChunks(func(ti int, t *Tensor) bool { return v.perturbs(e, ti) && t.View != nil }, func(ti int, t *Tensor, lo, hi int) {
		perturbedView(t, s, sign*e.epsQ[ti], e.cfg.Dist, lo, t.Q[lo:hi], t.View[lo:hi])
	})
}
