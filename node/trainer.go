// Package node runs a zopeer peer: it wires the engine (zo), the model, the
// update log (store) and, for `zopeer start`, the network (p2p). It owns the
// I/O and the order in which things happen: an update is durable in the log
// before it is applied or announced.
package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/dataset"
	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// Trainer is one machine's local zeroth-order loop. Each of its steps takes
// the machine's next samples, estimates one projected gradient per sample
// with two forward passes, codes the batch in one exponent byte plus one byte
// per sample, logs the updates durably and applies them. Not safe for
// concurrent use.
type Trainer struct {
	// observeForward, when set, is told the time of each forward pass of a
	// training mini-batch (the daemon's histogram).
	observeForward func(time.Duration)

	eng       *zo.Engine
	lm        *model.Model
	log       *store.Store
	train     *dataset.Dataset
	eval      *dataset.Dataset
	run       string
	machine   uint64
	batchSize int // records per mini-batch, i.e. per projected gradient
	samples   int // projected gradients per step, sharing one exponent byte
	bound     float64
	next      uint64
	applied   store.Summary // exactly the updates the weights include, or will once pending is flushed
	pending   []zo.Update   // taken (logged) but not yet applied: Flush applies them
	held      bool          // log only, apply nothing: the weights wait for a snapshot (Install) or a replay (Release)
	public    *store.PublicData
}

// maxPending bounds the updates Take holds before it applies them itself.
const maxPending = 1 << 16

// TrainerConfig is what NewTrainer needs besides the open parts.
type TrainerConfig struct {
	Machine   uint64
	BatchSize int
	Samples   int
	GradBound float64 // the run's |ĝ| bound: own gradients are clipped to it (0: none)
	// Public is the run's public-data member (nil: private data): proposals
	// then state their basis, and the trainer can re-verify peers' samples.
	Public *store.PublicData
}

// TrainableSpecs turns the model's parameters into the engine's tensor specs,
// training those whose name matches pattern (all when pattern is empty).
func TrainableSpecs(lm *model.Model, pattern string) ([]zo.TensorSpec, error) {
	var re *regexp.Regexp
	if pattern != "" {
		var err error
		if re, err = regexp.Compile(pattern); err != nil {
			return nil, fmt.Errorf("node: trainable pattern: %w", err)
		}
	}
	var specs []zo.TensorSpec
	n := 0
	for _, p := range lm.Params() {
		s := zo.TensorSpec(p)
		s.Trainable = re == nil || re.MatchString(p.Name)
		if s.Trainable {
			n++
		}
		specs = append(specs, s)
	}
	if n == 0 {
		return nil, fmt.Errorf("node: trainable pattern %q matches no parameter", pattern)
	}
	return specs, nil
}

// NewTrainer rebuilds the weights from the log into eng (which must hold the
// base weights) and resumes after the machine's last logged sample. lm then
// reads its weights from eng (model.SetSource, zo.Weights.DropViews).
func NewTrainer(ctx context.Context, eng *zo.Engine, lm *model.Model, log *store.Store,
	train, eval *dataset.Dataset, c TrainerConfig, progress func(store.ReplayProgress)) (*Trainer, store.ReplayResult, error) {
	if c.BatchSize < 1 || c.Samples < 1 || c.Samples > 4096 {
		return nil, store.ReplayResult{}, fmt.Errorf("node: batch size %d and samples per step %d must be ≥ 1 (samples ≤ 4096)", c.BatchSize, c.Samples)
	}
	// From here on the model streams its weights from the engine, layer by
	// layer: the float32 copy of the weights is released, the int32 weights
	// are all that is held (docs/MODEL.md, "Streamed weights").
	lm.SetSource(eng)
	eng.Weights().DropViews()
	res, err := log.Replay(ctx, eng, store.ReplayOptions{Progress: progress})
	if err != nil {
		return nil, res, fmt.Errorf("node: replay: %w", err)
	}
	t := &Trainer{
		eng: eng, lm: lm, log: log, train: train, eval: eval,
		run: eng.Config().Run, machine: c.Machine, batchSize: c.BatchSize, samples: c.Samples, bound: c.GradBound,
		applied: res.Included, public: c.Public,
	}
	if held := log.Held(c.Machine); len(held) > 0 {
		t.next = held[len(held)-1].Last + 1
	}
	return t, res, nil
}

// NextSample is the index of the machine's next own sample.
func (t *Trainer) NextSample() uint64 { return t.next }

// miniBatch returns the records of machine's sample k.
func (t *Trainer) miniBatch(machine, k uint64) []model.Sequence {
	seqs := make([]model.Sequence, t.batchSize)
	for j := range seqs {
		r := t.train.Record(t.train.Sample(t.run, machine, k*uint64(t.batchSize)+uint64(j)))
		seqs[j] = model.Sequence{Tokens: r.Tokens, LossFrom: r.LossStart}
	}
	return seqs
}

// Proposal is one step's coded projected gradients: samples First,
// First+1, … of the machine, sharing exponent Exp. Nothing is logged or
// applied until it is committed.
type Proposal struct {
	First uint64
	Exp   uint8
	Codes []int8
	Loss  float64 // mean of (L+ + L−)/2 over the samples (of L0 under onesided): the training loss
	// Basis is the set of updates the weights held while every gradient of
	// the proposal was computed (public-data runs; nil otherwise).
	Basis p2p.Basis
	// Slots are the samples' pool slots in a FedKSeed-Pro run (nil otherwise).
	Slots []uint8
}

// Updates are the proposal's updates from machine.
func (p Proposal) Updates(machine uint64) []zo.Update {
	us := make([]zo.Update, len(p.Codes))
	for k, c := range p.Codes {
		us[k] = zo.Update{Machine: machine, Sample: p.First + uint64(k), Exp: p.Exp, Code: c}
		if p.Slots != nil {
			us[k].Slotted, us[k].Slot = true, p.Slots[k]
		}
	}
	return us
}

// Exts are the proposal's batch extension records: its basis (public-data
// runs) and its pool slots (FedKSeed-Pro runs), in type order.
func (p Proposal) Exts() []p2p.Ext {
	var exts []p2p.Ext
	if p.Basis != nil {
		exts = append(exts, p2p.Ext{Type: p2p.ExtBasis, Value: p2p.AppendBasis(nil, p.Basis)})
	}
	if p.Slots != nil {
		exts = append(exts, p2p.Ext{Type: p2p.ExtPool, Value: p.Slots})
	}
	return exts
}

// Propose estimates the projected gradients of the machine's next Samples
// samples and codes them, clipped to the run's bound. It applies the
// updates Take left pending (fused into its first forward pass) and logs
// nothing.
func (t *Trainer) Propose(ctx context.Context) (Proposal, error) {
	p := Proposal{First: t.next, Codes: make([]int8, t.samples)}
	// The pending updates are applied by the first step, fused into its
	// first forward pass (zo.Engine.ApplyStep): the overflow verdict on what
	// is applied so far now, on all of it after the steps.
	if err := t.overflow(); err != nil {
		return p, err
	}
	var g []float64
	var loss float64
	var err error
	if t.eng.Config().PoolChoices > 0 {
		// FedKSeed-Pro: the slots are chosen from the weights' figures
		// before any sample is computed, as the gradients are.
		t.Flush()
		p.Slots = make([]uint8, t.samples)
		for k := range p.Slots {
			p.Slots[k] = t.eng.ChooseSlot(t.machine, t.next+uint64(k))
		}
	}
	if t.public != nil {
		// Nothing is applied until Commit: all the samples are computed at
		// this one state, the basis the batch states.
		p.Basis = compactBasis(t.Basis())
		err = t.atBasis(p.Basis, 0, func() error {
			g, loss, err = t.gradients(ctx, t.machine, t.next, t.samples, p.Slots)
			return err
		})
	} else {
		g, loss, err = t.gradients(ctx, t.machine, t.next, t.samples, p.Slots)
	}
	if oerr := t.overflow(); oerr != nil { // the cause if a step failed on wrapped weights
		return p, oerr
	}
	if err != nil {
		return p, err
	}
	p.Loss = loss
	u := make([]float64, len(g))
	for k := range u {
		u[k] = zo.DeriveSeed(t.run, t.machine, t.next+uint64(k)).CodeUniform()
	}
	exp, err := zo.QuantizeBounded(g, u, p.Codes, t.bound) // clipped SPSA: always admissible
	if err != nil {
		return p, fmt.Errorf("node: coding step at sample %d: %w", t.next, err)
	}
	p.Exp = exp
	return p, nil
}

// Gradients estimates, at the current weights, the projected gradients of
// the machine's samples first, first+1, …, first+n−1, and their mean training
// loss (L+ + L−)/2 (L0 under onesided), without coding or logging anything. The updates Take left
// pending are applied by the first step, in its first forward pass.
func (t *Trainer) Gradients(ctx context.Context, first uint64, n int) ([]float64, float64, error) {
	return t.gradients(ctx, t.machine, first, n, nil)
}

// gradients estimates n samples' projected gradients; slots, when not nil,
// are their pool slots (FedKSeed-Pro), else every sample takes slot 0 (the
// uniform rule's seed).
func (t *Trainer) gradients(ctx context.Context, machine, first uint64, n int, slots []uint8) ([]float64, float64, error) {
	if q := t.eng.Config().Estimator.OneSided; q > 0 {
		return t.oneSided(ctx, machine, first, n, q)
	}
	g := make([]float64, n)
	var loss float64
	for k := range g {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		u := zo.Update{Machine: machine, Sample: first + uint64(k)}
		if slots != nil {
			u.Slot = slots[k]
		}
		// The engine applies t.pending whatever the step's outcome.
		r, err := t.eng.ApplyStep(t.pending, model.Batch{Model: t.lm, Seqs: t.miniBatch(machine, u.Sample)}, t.eng.Config().PerturbSeedOf(u))
		t.pending = t.pending[:0]
		if err != nil {
			return nil, 0, fmt.Errorf("node: machine %016x sample %d: %w", machine, u.Sample, err)
		}
		g[k] = r.G
		loss += (r.LossPlus + r.LossMinus) / 2 / float64(n)
	}
	return g, loss, nil
}

// oneSided is gradients under the run's one-sided estimator
// (docs/PROTOCOL.md §3.1): the samples first, first+1, … in groups of q,
// each group on its first sample's mini-batch, one pass at θ for the group
// (L0) and one at θ+εz per sample, ĝ = (L+ − L0)/ε. The training loss is the
// groups' L0. Pool slots do not combine with it (zo.Config.Validate).
func (t *Trainer) oneSided(ctx context.Context, machine, first uint64, n, q int) ([]float64, float64, error) {
	t.Flush() // L0 is a plain pass at the canonical weights
	g := make([]float64, n)
	var loss, l0 float64
	var b model.Batch
	for k := range g {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		sample := first + uint64(k)
		if k%q == 0 {
			b = model.Batch{Model: t.lm, Seqs: t.miniBatch(machine, sample)}
			var err error
			if l0, err = t.eng.BaseLoss(b); err != nil {
				return nil, 0, fmt.Errorf("node: machine %016x sample %d: %w", machine, sample, err)
			}
		}
		r, err := t.eng.StepOneSided(b, t.eng.Config().PerturbSeedOf(zo.Update{Machine: machine, Sample: sample}), l0)
		if err != nil {
			return nil, 0, fmt.Errorf("node: machine %016x sample %d: %w", machine, sample, err)
		}
		g[k] = r.G
		loss += l0 / float64(n)
	}
	return g, loss, nil
}

// Forwards is the number of forward passes the trainer spends on a step
// of n samples: two each, or one each plus one per group under onesided.
func (t *Trainer) Forwards(n int) uint64 {
	if q := t.eng.Config().Estimator.OneSided; q > 0 {
		return uint64(n + (n+q-1)/q)
	}
	return 2 * uint64(n)
}

// Commit logs an own proposal (with its signed wire form, if any) and takes
// its updates (Take): the next step applies them in its first forward pass,
// as it does the peers' updates taken since, and every reader of the
// weights flushes first. The machine's next step starts after it.
func (t *Trainer) Commit(ctx context.Context, p Proposal, raw []byte) error {
	if p.First != t.next {
		return fmt.Errorf("node: proposal starts at sample %d, next is %d", p.First, t.next)
	}
	eqs, err := t.Take(ctx, raw, p.Updates(t.machine))
	if err != nil {
		return err
	}
	if len(eqs) > 0 { // our own samples conflict with the log: the home is shared or corrupt
		return fmt.Errorf("node: the log already holds other values for this machine's samples %d..: refusing to equivocate", p.First)
	}
	t.next += uint64(len(p.Codes))
	return nil
}

// Step proposes and commits one step without a network.
func (t *Trainer) Step(ctx context.Context) (Proposal, error) {
	p, err := t.Propose(ctx)
	if err != nil {
		return p, err
	}
	return p, t.Commit(ctx, p, nil)
}

// Apply logs updates durably (with raw, the signed batch carrying them, so
// the node can serve it to peers), then applies those the weights lack. It is
// how a node takes both its own updates and its peers'. It returns the
// updates that contradicted the log: they were neither logged nor applied.
func (t *Trainer) Apply(ctx context.Context, raw []byte, us []zo.Update) ([]store.Equivocation, error) {
	eqs, err := t.Take(ctx, raw, us)
	t.Flush()
	return eqs, err
}

// Take is Apply without the apply: the fresh updates wait until Flush (or
// until maxPending wait), so that batches taken in a row are applied in one
// pass over the weights, and in a pool-mode run with their coefficients
// summed per pool seed. Applying is order- and batching-independent, so this
// changes no weight; callers flush before they read the weights.
func (t *Trainer) Take(ctx context.Context, raw []byte, us []zo.Update) ([]store.Equivocation, error) {
	ar, err := t.log.AppendBatch(ctx, raw, us...)
	if err != nil {
		return nil, fmt.Errorf("node: logging updates: %w", err)
	}
	// Whatever the log neither refused nor found contradicting is now logged
	// with this value.
	rejected := make(map[zo.Update]bool, len(ar.Equivocations)+len(ar.Refused))
	for _, eq := range ar.Equivocations {
		rejected[eq.Offered] = true
	}
	for _, r := range ar.Refused {
		rejected[r.Update] = true
	}
	if t.held {
		return ar.Equivocations, nil
	}
	for _, u := range us {
		if !rejected[u] && t.applied.Add(u.Machine, u.Sample) {
			t.pending = append(t.pending, u)
		}
	}
	if len(t.pending) >= maxPending {
		t.Flush()
	}
	return ar.Equivocations, nil
}

// Hold makes Take log updates without applying them, and the weights stay
// where they are, until Install or Release: a joiner by snapshot does not
// pay for applying what the snapshot will replace.
func (t *Trainer) Hold() { t.held = true }

// Held reports whether the trainer holds (the weights lag the log).
func (t *Trainer) Held() bool { return t.held }

// Release ends a hold: the weights are rebuilt from the log (its newest
// valid checkpoint, then the rest) as at start.
func (t *Trainer) Release(ctx context.Context) (store.ReplayResult, error) {
	res, err := t.log.Replay(ctx, t.eng, store.ReplayOptions{})
	if err != nil {
		return res, fmt.Errorf("node: replay: %w", err)
	}
	t.applied, t.pending, t.held = res.Included, t.pending[:0], false
	return res, nil
}

// Install ends a hold with a verified snapshot: raw (the canonical layout)
// becomes the weights of exactly the logged updates included, is written
// as a checkpoint, and the log's other updates are applied on top (Release).
func (t *Trainer) Install(ctx context.Context, raw []byte, included store.Summary) (store.ReplayResult, error) {
	w := t.eng.Weights()
	if err := w.SetQ(raw); err != nil {
		return store.ReplayResult{}, fmt.Errorf("node: snapshot: %w", err)
	}
	if _, err := t.log.WriteCheckpoint(ctx, w, included); err != nil {
		return store.ReplayResult{}, fmt.Errorf("node: snapshot: %w", err)
	}
	return t.Release(ctx)
}

// Flush applies the updates Take left pending.
func (t *Trainer) Flush() {
	t.eng.Apply(t.pending)
	t.pending = t.pending[:0]
}

// Eval returns the mean loss per target token over the held-out set, and the
// number of target tokens, at the current weights.
func (t *Trainer) Eval(ctx context.Context) (float64, int, error) {
	t.Flush()
	return EvalLoss(ctx, t.eng, t.lm, t.eval, t.batchSize)
}

// EvalLoss is the mean next-token loss over every target token of d.
func EvalLoss(ctx context.Context, eng *zo.Engine, lm *model.Model, d *dataset.Dataset, batch int) (float64, int, error) {
	if eng != nil {
		eng.SyncViews()
	}
	var sum float64
	var tokens int
	for i := 0; i < d.Len(); i += batch {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		seqs := make([]model.Sequence, 0, batch)
		for j := i; j < min(i+batch, d.Len()); j++ {
			r := d.Record(j)
			seqs = append(seqs, model.Sequence{Tokens: r.Tokens, LossFrom: r.LossStart})
		}
		l, n, err := lm.Loss(seqs)
		if err != nil {
			return 0, 0, fmt.Errorf("node: eval: %w", err)
		}
		sum += l * float64(n)
		tokens += n
	}
	if tokens == 0 {
		return math.NaN(), 0, fmt.Errorf("node: eval: no target tokens")
	}
	return sum / float64(tokens), tokens, nil
}

// Exclude takes an excluded machine's updates out of the weights: removed
// are the updates its exclusion took out of the log (store.Exclude); those the
// weights include are subtracted exactly, which leaves the weights bit for
// bit as if they had never been applied.
func (t *Trainer) Exclude(machine uint64, removed []zo.Update) {
	t.Flush()
	var in []zo.Update
	for _, u := range removed {
		if u.Machine == machine && t.applied.Contains(u.Machine, u.Sample) {
			in = append(in, u)
		}
	}
	t.eng.Remove(in)
	delete(t.applied, machine)
}

// ErrOverflow means the run's set of updates has moved some weight past what
// int32 holds (docs/DESIGN.md, "Bounded influence"): every peer holding the
// same set finds the same, and none may train, checkpoint or export on it.
var ErrOverflow = errors.New("node: the run's updates have left the weights' int32 range")

// Overflow reports ErrOverflow while the weights hold an overflowed element
// (after applying what is pending: callers go on to use the weights).
func (t *Trainer) Overflow() error {
	t.Flush()
	return t.overflow()
}

// overflow is Overflow on what the weights hold now, pending updates aside.
func (t *Trainer) overflow() error {
	if tensors, elems := t.eng.Weights().Overflow(); elems > 0 {
		return fmt.Errorf("%w: %d elements of %d tensors", ErrOverflow, elems, tensors)
	}
	return nil
}

// Checkpoint writes the current weights with exactly the updates they include.
func (t *Trainer) Checkpoint(ctx context.Context) (store.CheckpointInfo, error) {
	if err := t.Overflow(); err != nil {
		return store.CheckpointInfo{}, err
	}
	return t.log.WriteCheckpoint(ctx, t.eng.Weights(), t.applied.Clone())
}

// SkipPublished moves the machine's next sample past every sample of its own
// that the log holds: some may have come from peers (a home restored from an
// older copy, or re-initialised, learns them by sync). It returns the old
// next sample and whether it moved.
func (t *Trainer) SkipPublished() (from uint64, moved bool) {
	from = t.next
	if held := t.log.Held(t.machine); len(held) > 0 && held[len(held)-1].Last+1 > t.next {
		t.next = held[len(held)-1].Last + 1
		return from, true
	}
	return from, false
}

// Basis is the set of updates the weights include, as a batch states it.
func (t *Trainer) Basis() p2p.Basis {
	ms := t.applied.Machines()
	bs := make(p2p.Basis, 0, len(ms))
	for _, m := range ms {
		if rs := ranges(t.applied[m]); len(rs) > 0 {
			bs = append(bs, p2p.Holding{Machine: m, Samples: rs})
		}
	}
	return bs
}
