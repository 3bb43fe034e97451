package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// Why a sample cannot be re-computed (now). None of them is a verdict: the
// verifier skips or defers, and never accuses on them.
var (
	// errBasisMissing: the weights lack an update of the basis (anti-entropy
	// may bring it).
	errBasisMissing = errors.New("node: the weights lack an update of the basis")
	// errBasisExcluded: the basis names an excluded machine, whose updates
	// are gone from the log.
	errBasisExcluded = errors.New("node: the basis names an excluded machine")
	// errBasisFar: more updates than allowed would have to be subtracted.
	errBasisFar = errors.New("node: the basis is too far from the weights")
)

// Recompute returns the projected gradient of machine's sample computed at
// the basis state: the weights minus every update they include that the
// basis does not name (subtracted exactly, zo.Engine.Remove, and added back
// afterwards, so the weights end bit for bit as they were). The minibatch is
// the run's public rule (t.miniBatch) and the seed the sample's. maxOutside
// bounds the updates subtracted (0: no bound).
func (t *Trainer) Recompute(ctx context.Context, machine, sample uint64, basis p2p.Basis, maxOutside uint64) (float64, error) {
	if t.public == nil {
		return 0, errors.New("node: re-computation needs a public-data run")
	}
	want := make(map[uint64]p2p.Ranges, len(basis))
	for _, h := range basis {
		if t.log.Excluded(h.Machine) {
			return 0, fmt.Errorf("%w: %016x", errBasisExcluded, h.Machine)
		}
		if len(h.Samples.Sub(ranges(t.applied[h.Machine]))) > 0 {
			return 0, fmt.Errorf("%w: machine %016x", errBasisMissing, h.Machine)
		}
		want[h.Machine] = h.Samples
	}
	// The updates the weights include beyond the basis.
	var outside []zo.Update
	var n uint64
	extra := map[uint64]p2p.Ranges{}
	for m, rs := range t.applied {
		if x := ranges(rs).Sub(want[m]); len(x) > 0 {
			extra[m] = x
			n += x.Count()
		}
	}
	if maxOutside > 0 && n > maxOutside {
		return 0, fmt.Errorf("%w: %d updates beyond it, at most %d", errBasisFar, n, maxOutside)
	}
	for m, rs := range extra {
		for _, r := range rs {
			for s := r.Lo; ; s++ {
				u, ok, err := t.log.Get(m, s)
				if err != nil {
					return 0, fmt.Errorf("node: re-computing: %w", err)
				}
				if !ok {
					return 0, fmt.Errorf("node: re-computing: the weights include %016x/%d, the log lacks it", m, s)
				}
				outside = append(outside, u)
				if s == r.Hi {
					break
				}
			}
		}
	}
	t.eng.Remove(outside)
	defer t.eng.Apply(outside)
	g, _, err := t.gradients(ctx, machine, sample, 1)
	if err != nil {
		return 0, err
	}
	return g[0], nil
}

// ranges converts a store range set to p2p's.
func ranges(rs store.RangeSet) p2p.Ranges {
	out := make(p2p.Ranges, len(rs))
	for i, r := range rs {
		out[i] = p2p.Range{Lo: r.First, Hi: r.Last}
	}
	return out
}

// AccusationExcess re-computes an accusation's sample at its batch's basis
// and returns by how much the claim misses (zo.Excess): a confirmed
// accusation's excess is above the manifest's tolerance.
func (t *Trainer) AccusationExcess(ctx context.Context, ev *p2p.Evidence) (float64, error) {
	basis, err := ev.Basis()
	if err != nil {
		return 0, err
	}
	g, err := t.Recompute(ctx, ev.Machine, ev.Sample, basis, 0)
	if err != nil {
		return 0, err
	}
	k := int(ev.Sample - ev.A.First)
	return zo.Excess(ev.A.Exp, ev.A.Codes[k], g, t.bound), nil
}
