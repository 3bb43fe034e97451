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
func (e *Engine) perturb(s Seed, sign int64) {
	e.w.forChunks(true, func(ti int, t *Tensor, lo, hi int) {
		eps, sc := sign*e.epsQ[ti], t.scale()
		q, v := t.Q[lo:hi], t.View[lo:hi]
		first := t.Offset + uint64(lo)
		if e.cfg.Dist == Gauss4 {
			z := make([]int32, len(q))
			Gauss4.Fill(s, first, z)
			for i := range q {
				v[i] = float32(int64(q[i])+eps*int64(z[i])) * sc
			}
			return
		}
		b := first / 128
		for base := 0; base < len(q); base, b = base+128, b+1 {
			r0, r1, r2, r3 := philox(uint32(b), uint32(b>>32), s.Stream[0], s.Stream[1], s.Key[0], s.Key[1])
			r := [4]uint32{r0, r1, r2, r3}
			n := min(128, len(q)-base)
			qb, vb := q[base:base+n], v[base:base+n]
			for i := range qb {
				m := -int64(r[i>>5] >> (i & 31) & 1)
				vb[i] = float32(int64(qb[i])+(eps^m)-m) * sc
			}
		}
	})
}
