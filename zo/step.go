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
// θ+εz and θ−εz. Both perturbed views are derived from the canonical weights,
// which Step never touches, so no residue is left behind; views are re-derived
// by the next SyncViews.
func (e *Engine) Step(loss Loss, s Seed) (StepResult, error) {
	var r StepResult
	var err error
	e.stale = true
	e.perturb(s, +1)
	if r.LossPlus, err = loss.Loss(); err != nil {
		return r, fmt.Errorf("zo: step: loss at θ+εz: %w", err)
	}
	e.perturb(s, -1)
	if r.LossMinus, err = loss.Loss(); err != nil {
		return r, fmt.Errorf("zo: step: loss at θ−εz: %w", err)
	}
	r.G = (r.LossPlus - r.LossMinus) / (2 * e.cfg.Eps)
	if math.IsNaN(r.G) || math.IsInf(r.G, 0) {
		return r, fmt.Errorf("zo: step: losses %g and %g: %w", r.LossPlus, r.LossMinus, ErrNonFinite)
	}
	return r, nil
}

// perturb writes view = (Q + sign·εQ·zInt)·2^−Exp for every trainable tensor.
func (e *Engine) perturb(s Seed, sign int32) {
	e.w.forChunks(trainableSel(true), func(ti int, t *Tensor, lo, hi int) {
		eps, sc := sign*e.epsQ[ti], t.scale()
		q, v := t.Q[lo:hi], t.View[lo:hi]
		first := t.Offset + uint64(lo)
		if e.cfg.Dist == Gauss4 {
			z := make([]int32, len(q))
			Gauss4.Fill(s, first, z)
			for i := range q {
				v[i] = float32(q[i]+eps*z[i]) * sc
			}
			return
		}
		var in philoxIn
		var out philoxOut
		setSeed(&in, s)
		full := len(q) / 128
		for blk := 0; blk < full; blk += 16 {
			setBlocks(&in, first/128+uint64(blk), true)
			philox16(&in, &out)
			for l := range min(16, full-blk) {
				at := (blk + l) * 128
				perturbBlock((*[128]int32)(q[at:]), (*[128]float32)(v[at:]), lanePtr(&out, l), eps, sc)
			}
		}
		if at := full * 128; at < len(q) {
			blk := s.Block(first/128 + uint64(full))
			for i := at; i < len(q); i++ {
				j := i - at
				m := -int32(blk[j>>5] >> (j & 31) & 1)
				v[i] = float32(q[i]+(eps^m)-m) * sc
			}
		}
	})
}
