package node

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

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
	// errBasisExcluded: the basis names an excluded machine whose updates
	// this peer cannot get back (an equivocator's batches are not kept; a
	// banned machine's are, but this peer may lack some).
	errBasisExcluded = errors.New("node: the basis names an excluded machine")
	// errBasisFar: more updates than allowed would have to be subtracted.
	errBasisFar = errors.New("node: the basis is too far from the weights")
)

// Recompute returns the projected gradient of machine's sample computed at
// the basis state (atBasis). The minibatch is the run's public rule
// (t.miniBatch) and the seed the sample's. maxOutside bounds the updates
// subtracted (0: no bound).
func (t *Trainer) Recompute(ctx context.Context, machine, sample uint64, slot uint8, basis p2p.Basis, maxOutside uint64) (float64, error) {
	if t.public == nil {
		return 0, errors.New("node: re-computation needs a public-data run")
	}
	var g []float64
	err := t.atBasis(basis, maxOutside, func() error {
		var err error
		g, _, err = t.gradients(ctx, machine, sample, 1, []uint8{slot})
		return err
	})
	if err != nil {
		return 0, err
	}
	return g[0], nil
}

// atBasis runs fn with the weights at the basis state: the weights minus
// every update they include that the basis does not name, subtracted
// exactly (zo.Engine.Remove) and added back afterwards, so the weights end
// bit for bit as they were. Every update of the basis must be in the
// weights, and the basis must name no excluded machine.
func (t *Trainer) atBasis(basis p2p.Basis, maxOutside uint64, fn func() error) error {
	// t.applied counts the updates Take left pending: the weights must hold
	// them too before the basis is computed from t.applied.
	t.Flush()
	want := make(map[uint64]p2p.Ranges, len(basis))
	var banned []zo.Update // basis updates of banned machines, added for fn only
	for _, h := range basis {
		if t.log.Excluded(h.Machine) {
			us, err := t.bannedUpdates(h)
			if err != nil {
				return err
			}
			banned = append(banned, us...)
			continue
		}
		if len(h.Samples.Sub(ranges(t.applied[h.Machine]))) > 0 {
			return fmt.Errorf("%w: machine %016x", errBasisMissing, h.Machine)
		}
		want[h.Machine] = h.Samples
	}
	// The updates the weights include beyond the basis.
	var n uint64
	extra := map[uint64]p2p.Ranges{}
	for m, rs := range t.applied {
		if x := ranges(rs).Sub(want[m]); len(x) > 0 {
			extra[m] = x
			n += x.Count()
		}
	}
	if n += uint64(len(banned)); maxOutside > 0 && n > maxOutside {
		return fmt.Errorf("%w: %d updates beyond it, at most %d", errBasisFar, n, maxOutside)
	}
	outside := make([]zo.Update, 0, n)
	for m, rs := range extra {
		for _, r := range rs {
			for s := r.Lo; ; s++ {
				u, ok, err := t.log.Get(m, s)
				if err != nil {
					return fmt.Errorf("node: reaching a basis: %w", err)
				}
				if !ok {
					return fmt.Errorf("node: reaching a basis: the weights include %016x/%d, the log lacks it", m, s)
				}
				outside = append(outside, u)
				if s == r.Hi {
					break
				}
			}
		}
	}
	t.eng.Remove(outside)
	t.eng.Apply(banned)
	defer func() {
		t.eng.Remove(banned)
		t.eng.Apply(outside)
	}()
	return fn()
}

// bannedUpdates returns the updates of h (a banned machine's part of a
// basis) from the signed batches the log keeps for it (store.Store.Ban): a
// basis computed before the ban still names them, and peers that banned
// the machine first must reach that basis too, or they could not judge a
// later accusation that peers banning in the other order judge. An
// equivocator's batches are not kept: errBasisExcluded.
func (t *Trainer) bannedUpdates(h p2p.Holding) ([]zo.Update, error) {
	out, err := t.keptUpdates(h.Machine, h.Samples)
	if err != nil {
		return nil, fmt.Errorf("node: reaching a basis: %w", err)
	}
	if uint64(len(out)) != h.Samples.Count() {
		if t.bannedNotEquivocator(h.Machine) {
			// Banned here before this peer held all of it: the samples are
			// fetched (checkOne asks for missingOf) from peers that kept them.
			return nil, fmt.Errorf("%w: banned machine %016x", errBasisMissing, h.Machine)
		}
		return nil, fmt.Errorf("%w: %016x, whose batches this peer does not hold", errBasisExcluded, h.Machine)
	}
	return out, nil
}

// keptUpdates returns the updates among rs of an excluded machine that the
// signed batches the log keeps for it carry, each sample once.
func (t *Trainer) keptUpdates(machine uint64, rs p2p.Ranges) ([]zo.Update, error) {
	run := p2p.NewRunTag(t.run)
	var out []zo.Update
	seen := map[uint64]bool{}
	for _, r := range rs {
		raws, err := t.log.Batches(machine, r.Lo, r.Hi, 0)
		if err != nil {
			return nil, err
		}
		for _, raw := range raws {
			b, err := p2p.DecodeBatch(raw, run)
			if err != nil || b.Machine != machine {
				continue
			}
			for _, u := range b.Updates() {
				if u.Sample >= r.Lo && u.Sample <= r.Hi && !seen[u.Sample] {
					seen[u.Sample] = true
					out = append(out, u)
				}
			}
		}
	}
	return out, nil
}

// bannedNotEquivocator reports whether machine was excluded by a ban (an
// accusation), whose signed batches the log keeps, rather than for
// equivocation, whose batches nobody keeps.
func (t *Trainer) bannedNotEquivocator(machine uint64) bool {
	raw, ok := t.log.Evidence(machine)
	if !ok {
		return false
	}
	ev, err := p2p.DecodeEvidence(raw, p2p.NewRunTag(t.run))
	return err == nil && ev.IsAccusation()
}

// missingOf returns, per machine, the samples of basis the weights lack.
func (t *Trainer) missingOf(basis p2p.Basis) map[uint64]p2p.Ranges {
	out := map[uint64]p2p.Ranges{}
	for _, h := range basis {
		held := ranges(t.applied[h.Machine])
		if t.log.Excluded(h.Machine) {
			us, _ := t.keptUpdates(h.Machine, h.Samples) // on a read error, ask for all of it
			held = nil
			for _, u := range us {
				held = held.Add(u.Sample, u.Sample)
			}
		}
		if x := h.Samples.Sub(held); len(x) > 0 {
			out[h.Machine] = x
		}
	}
	return out
}

// maxBasisValue bounds an encoded basis so that its record fits the batch
// extension block (p2p.MaxExtSize less the record's type and length).
const maxBasisValue = p2p.MaxExtSize - 4

// compactBasis returns a basis within maxBasisValue bytes included in bs:
// bs itself when it fits; else each machine's first range only, machines
// with the most updates first, as many as fit. A producer whose weights
// hold a fragmented set (gaps that anti-entropy has not filled, or a peer
// that publishes scattered samples on purpose) computes at that smaller
// state instead of failing.
func compactBasis(bs p2p.Basis) p2p.Basis {
	if len(p2p.AppendBasis(nil, bs)) <= maxBasisValue {
		return bs
	}
	order := slices.Clone(bs)
	slices.SortStableFunc(order, func(a, b p2p.Holding) int {
		return cmp.Compare(b.Samples[0].Hi-b.Samples[0].Lo, a.Samples[0].Hi-a.Samples[0].Lo)
	})
	var out p2p.Basis
	size := binary.MaxVarintLen16
	for _, h := range order {
		e := 8 + 1 + 2*binary.MaxVarintLen64 // machine, one range
		if size+e > maxBasisValue {
			break
		}
		size += e
		out = append(out, p2p.Holding{Machine: h.Machine, Samples: h.Samples[:1]})
	}
	slices.SortFunc(out, func(a, b p2p.Holding) int { return cmp.Compare(a.Machine, b.Machine) })
	return out
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
	k := int(ev.Sample - ev.A.First)
	g, err := t.Recompute(ctx, ev.Machine, ev.Sample, ev.A.Update(k).Slot, basis, 0)
	if err != nil {
		return 0, err
	}
	return zo.Excess(ev.A.Exp, ev.A.Codes[k], g, t.bound), nil
}
