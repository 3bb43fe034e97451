package zo

import (
	"fmt"
	"math"
)

// Config is the part of a run's configuration the engine needs. Every peer of a
// run must hold the same Config: it fixes seeds, perturbations and step sizes.
type Config struct {
	Run  string  // run identifier; part of every seed
	Dist Dist    // perturbation distribution
	Eps  float64 // perturbation scale ε
	LR   float64 // learning rate η; an update moves θ by −η(s)·ĝ·z
	// Warmup and Decay schedule η by the update's own sample index s (its
	// machine's s-th sample), never by arrival, so the weights stay a function
	// of the set: η(s) = LR · min(1, (s+1)/Warmup) · max(0, 1 − s/Decay).
	// Zero turns either off.
	Warmup uint64
	Decay  uint64
	// Pool, when not 0, is the run's pool of seeds K (pool.go): every
	// update perturbs along one of K seeds derived from the run.
	Pool uint32
	// PoolChoices, when not 0, makes a pool run FedKSeed-Pro with candidate
	// slots (pro.go): each update carries a slot j < PoolChoices, choosing
	// its pool seed among PoolChoices candidates.
	PoolChoices uint32
	// Estimator refines which elements an update perturbs and how far; the
	// zero value is MeZO (docs/PROTOCOL.md §3.1).
	Estimator Estimator
}

// LRAt is η for an update of sample index s. It uses only IEEE-754 division,
// subtraction, min/max and products (no fused multiply-add can apply), so it
// is the same on every platform.
func (c Config) LRAt(s uint64) float64 {
	lr := c.LR
	if c.Warmup > 0 {
		lr = float64(lr * min(1, float64(s+1)/float64(c.Warmup)))
	}
	if c.Decay > 0 {
		lr = float64(lr * max(0, 1-float64(s)/float64(c.Decay)))
	}
	return lr
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.Run == "":
		return fmt.Errorf("zo: config: empty run id")
	case c.Dist != Rademacher && c.Dist != Gauss4:
		return fmt.Errorf("zo: config: unknown distribution %d", c.Dist)
	case !(c.Eps > 0) || math.IsInf(c.Eps, 0):
		return fmt.Errorf("zo: config: eps must be positive and finite, got %g", c.Eps)
	case !(c.LR >= 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("zo: config: lr must be non-negative and finite, got %g", c.LR)
	}
	if err := c.validatePool(); err != nil {
		return err
	}
	if c.Pool != 0 && !c.Estimator.IsZero() {
		// Not combined yet: pool sums and an estimator's per-update choices
		// have not been specified together (docs/PROTOCOL.md §12).
		return fmt.Errorf("zo: a seed pool (%d) with estimator %s is not supported", c.Pool, c.Estimator)
	}
	return c.Estimator.validate()
}

// Update is one projected gradient: machine's sample-th sample, coded in one
// byte plus the exponent byte its batch shares. (Machine, Sample) identify it.
type Update struct {
	Machine uint64
	Sample  uint64
	Exp     uint8
	Code    int8
	// Slotted: the update carries a pool slot (a FedKSeed-Pro run, pro.go),
	// Slot, which is then part of its value: its digest term, its stored
	// value and its equivocation check include it.
	Slotted bool
	Slot    uint8
}

// SameValue reports whether u and v give their sample the same value: the
// same (Exp, Code) and, in a FedKSeed-Pro run, the same slot.
func (u Update) SameValue(v Update) bool {
	return u.Exp == v.Exp && u.Code == v.Code && u.Slotted == v.Slotted && u.Slot == v.Slot
}

// Grad is the decoded projected gradient ĝ.
func (u Update) Grad() float64 { return Dequantize(u.Exp, u.Code) }
