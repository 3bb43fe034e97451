package zo

import (
	"errors"
	"fmt"
)

// Rules decide which updates a run admits. Each rule is a pure function of
// the update and the run's manifest, so every peer admits the same set and
// the weights stay a function of that set.
type Rules struct {
	// GradBound bounds |ĝ| (Admissible); 0 means no bound.
	GradBound float64
	// MaxSamples caps a machine's sample indices (Sample < MaxSamples), so
	// one key contributes a bounded number of updates; 0 means no cap.
	MaxSamples uint64
	// Admitted, when non-nil, lists the only machines that may contribute
	// (a closed run).
	Admitted map[uint64]bool
	// NeedBasis: batches must state the set of updates their gradients were
	// computed at (a public-data run, docs/PROTOCOL.md §11.2). The wire
	// format carries it, so package p2p checks it.
	NeedBasis bool
	// PoolChoices: a FedKSeed-Pro run's m (pro.go). Every update must carry
	// a slot below it; 0: no update may carry one.
	PoolChoices uint32
}

// Reasons an update is refused, for errors.Is and for counting.
var (
	ErrBound       = errors.New("zo: update exceeds the run's gradient bound")
	ErrSampleCap   = errors.New("zo: sample index beyond the run's per-machine cap")
	ErrNotAdmitted = errors.New("zo: machine is not admitted to this closed run")
	ErrPool        = errors.New("zo: pool slot missing, forbidden or out of range")
)

// CheckMachine reports whether machine may contribute at all.
func (r Rules) CheckMachine(machine uint64) error {
	if r.Admitted != nil && !r.Admitted[machine] {
		return fmt.Errorf("%w: machine %016x", ErrNotAdmitted, machine)
	}
	return nil
}

// CheckBatch reports whether every update of one machine's batch (samples
// first, first+1, …, sharing exp) is admitted.
func (r Rules) CheckBatch(machine, first uint64, exp uint8, codes []int8) error {
	if err := r.CheckMachine(machine); err != nil {
		return err
	}
	if r.MaxSamples > 0 && (first >= r.MaxSamples || uint64(len(codes)) > r.MaxSamples-first) {
		return fmt.Errorf("%w: samples %d..%d, cap %d", ErrSampleCap, first, first+uint64(len(codes))-1, r.MaxSamples)
	}
	limit := CodeLimit(exp, r.GradBound)
	for i, c := range codes {
		if c == -128 || int(c) > limit || int(c) < -limit {
			return fmt.Errorf("%w: sample %d has |ĝ| = %g > %g", ErrBound, first+uint64(i), abs(Dequantize(exp, c)), r.GradBound)
		}
	}
	return nil
}

// CheckSlots reports whether a batch's pool slots suit the run: present
// (slots non-nil) exactly in a FedKSeed-Pro run, each below its m.
func (r Rules) CheckSlots(first uint64, slots []uint8) error {
	switch {
	case r.PoolChoices == 0 && slots != nil:
		return fmt.Errorf("%w: pool slots in a run without pool choices", ErrPool)
	case r.PoolChoices > 0 && slots == nil:
		return fmt.Errorf("%w: no pool slots in a run with %d pool choices", ErrPool, r.PoolChoices)
	}
	for i, j := range slots {
		if uint32(j) >= r.PoolChoices {
			return fmt.Errorf("%w: sample %d has slot %d of %d", ErrPool, first+uint64(i), j, r.PoolChoices)
		}
	}
	return nil
}

// Check reports whether one update is admitted.
func (r Rules) Check(u Update) error {
	if err := r.CheckBatch(u.Machine, u.Sample, u.Exp, []int8{u.Code}); err != nil {
		return err
	}
	if !u.Slotted {
		return r.CheckSlots(u.Sample, nil)
	}
	slot := [1]uint8{u.Slot}
	return r.CheckSlots(u.Sample, slot[:])
}

func abs(x float64) float64 { return max(x, -x) }
