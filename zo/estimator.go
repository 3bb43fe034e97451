package zo

import (
	"fmt"
	"math/bits"
	"sort"
)

// Estimator refines MeZO's perturbation (docs/PROTOCOL.md §3.1). Its zero
// value is MeZO itself: every trainable element, at scale 1. Both options
// keep the perturbation an integer function of the seed and the run's
// configuration, so applies stay exact, order-free and removable.
type Estimator struct {
	// Parts ≥ 2 cuts the trainable tensors, in layout order, into Parts
	// groups of consecutive tensors; every update perturbs and moves the
	// tensors of one group only, drawn from its seed (block-coordinate
	// SPSA). 0 (or 1): every update perturbs every trainable tensor.
	Parts int
	// Scale gives the named trainable tensors a perturbation and a step
	// 2^k times MeZO's (k = Scale[name]): a diagonal preconditioner fixed by
	// the run, in powers of two so that ε_t and the coefficients stay exact
	// binary64 scalings. Absent names: k = 0.
	Scale map[string]int
	// OneSided ≥ 1 is a producer rule only (docs/PROTOCOL.md §3.1): the
	// run's updates are forward differences with a shared base, each group
	// of OneSided consecutive samples of a step estimated on the group's
	// first mini-batch as ĝ = (L(θ+εz) − L(θ))/ε, OneSided+1 forward passes
	// for OneSided updates. Applies do not read it. 0: central differences.
	OneSided int
}

// maxParts bounds Parts: a group is at least one tensor, and the choice
// of a group is one 64-bit product.
const maxParts = 1 << 16

// maxScale bounds |k|: ε_t and the coefficients must stay on the grid and
// in range (NewEngine checks ε_t; the clamp bounds the coefficients).
const maxScale = 30

// maxOneSided bounds OneSided: a group never spans more than a step's
// samples (at most 4096, node.NewTrainer).
const maxOneSided = 4096

// IsZero reports whether e is plain MeZO.
func (e Estimator) IsZero() bool { return e.Parts <= 1 && len(e.Scale) == 0 && e.OneSided == 0 }

func (e Estimator) validate() error {
	if e.Parts < 0 || e.Parts > maxParts {
		return fmt.Errorf("zo: config: estimator parts %d (want 0..%d)", e.Parts, maxParts)
	}
	if e.OneSided < 0 || e.OneSided > maxOneSided {
		return fmt.Errorf("zo: config: estimator onesided %d (want 0..%d)", e.OneSided, maxOneSided)
	}
	for n, k := range e.Scale {
		if k < -maxScale || k > maxScale {
			return fmt.Errorf("zo: config: estimator scale of %q is 2^%d (want |k| ≤ %d)", n, k, maxScale)
		}
	}
	return nil
}

// String is a short description for logs.
func (e Estimator) String() string {
	if e.IsZero() {
		return "mezo"
	}
	s := "mezo"
	if e.Parts > 1 {
		s += fmt.Sprintf("+parts:%d", e.Parts)
	}
	if len(e.Scale) > 0 {
		s += fmt.Sprintf("+scale:%d", len(e.Scale))
	}
	if e.OneSided > 0 {
		s += fmt.Sprintf("+onesided:%d", e.OneSided)
	}
	return s
}

// auxBlockPart is the block whose first 64 bits choose an update's group.
const auxBlockPart = 1<<63 + 1<<61

// Part is the group an update with seed s perturbs when the run cuts its
// trainable tensors into parts groups: ⌊x·parts / 2^64⌋ with x the first
// two words of block auxBlockPart (an exact 128-bit product).
func (s Seed) Part(parts int) int {
	r := s.Block(auxBlockPart)
	hi, _ := bits.Mul64(uint64(r[0])<<32|uint64(r[1]), uint64(parts))
	return int(hi)
}

// estimatorLayout resolves an Estimator against the weights: each tensor's
// group (-1 for frozen ones) and scale exponent.
func estimatorLayout(est Estimator, w *Weights) (group, scale []int, err error) {
	group, scale = make([]int, len(w.Tensors)), make([]int, len(w.Tensors))
	trainable := 0
	for _, t := range w.Tensors {
		if t.Trainable {
			trainable++
		}
	}
	if est.Parts > trainable {
		return nil, nil, fmt.Errorf("zo: estimator parts %d exceed the %d trainable tensors", est.Parts, trainable)
	}
	byName := map[string]int{}
	j := 0
	for ti, t := range w.Tensors {
		byName[t.Name] = ti
		group[ti] = -1
		if t.Trainable {
			if est.Parts > 1 {
				group[ti] = j * est.Parts / trainable
			} else {
				group[ti] = 0
			}
			j++
		}
	}
	names := make([]string, 0, len(est.Scale))
	for n := range est.Scale {
		names = append(names, n)
	}
	sort.Strings(names) // the first error is the same on every run
	for _, n := range names {
		ti, ok := byName[n]
		if !ok {
			return nil, nil, fmt.Errorf("zo: estimator scale names %q, which the model does not have", n)
		}
		if !w.Tensors[ti].Trainable {
			return nil, nil, fmt.Errorf("zo: estimator scale names %q, which is frozen", n)
		}
		scale[ti] = est.Scale[n]
	}
	return group, scale, nil
}

// active reports whether tensor ti moves under the update with seed s.
func (e *Engine) active(s Seed, ti int) bool {
	if !e.w.Tensors[ti].Trainable {
		return false
	}
	part := e.partOf(s)
	return part < 0 || e.group[ti] == part
}
