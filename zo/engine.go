package zo

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Engine applies updates to Weights and runs local SPSA steps under one run's
// Config. The canonical weights change only through Apply, by exact integer
// additions, so they are a pure function of the base weights and the set of
// updates applied. An Engine is not safe for concurrent use.
type Engine struct {
	cfg   Config
	w     *Weights
	epsQ  []int32   // ε on each tensor's grid, in units of the integer-valued z
	group []int     // each tensor's estimator group (-1: frozen)
	scale []int     // each tensor's estimator scale exponent
	only  int       // StepTensor: 1 + the one tensor a step perturbs; 0: as configured
	stale bool      // views differ from the canonical weights (after Apply or Step)
	view  viewState // the perturbation FillView applies (inside Step)
	pro   *proStats // FedKSeed-Pro runs: per-seed figures of the applied updates
	pend  *deferred // the apply ApplyStep fuses into its forward passes

	exactOnly bool // tests: every apply takes the exact path
	exactRuns int  // tensor applies that took the exact path (for tests)
}

// maxCoeff bounds one update's step on one tensor's grid (1/32 of the int32
// range); the gradient bound (CodeLimit) is the real limit on influence, and
// any wrap is detected (Weights.Overflow).
const maxCoeff = 1 << 26

// maxEps bounds ε on a tensor's grid (1/16 of the int32 range) so that Q ± ε
// stays in range for weights that have not grown past 7/8 of it.
const maxEps = 1 << 27

// NewEngine checks cfg against w.
func NewEngine(cfg Config, w *Weights) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	group, scale, err := estimatorLayout(cfg.Estimator, w)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, w: w, epsQ: make([]int32, len(w.Tensors)), group: group, scale: scale}
	if cfg.PoolChoices > 0 {
		e.pro = newProStats(cfg.Pool)
	}
	for i, t := range w.Tensors {
		if !t.Trainable {
			continue
		}
		q := math.RoundToEven(math.Ldexp(cfg.Eps, t.Exp+scale[i]) / cfg.Dist.sigma())
		if q < 1 || q > maxEps {
			return nil, fmt.Errorf("zo: eps %g is off the grid of tensor %q (2^-%d per unit)", cfg.Eps, t.Name, t.Exp)
		}
		e.epsQ[i] = int32(q)
	}
	return e, nil
}

// Config returns the run configuration.
func (e *Engine) Config() Config { return e.cfg }

// Weights returns the weights the engine updates.
func (e *Engine) Weights() *Weights { return e.w }

// SyncViews makes the float32 views canonical again after Apply or Step;
// call it before a forward pass that is not part of Step (evaluation, sampling).
func (e *Engine) SyncViews() {
	e.flushDeferred()
	if e.stale {
		e.w.syncViews(true)
		e.stale = false
	}
}

// Coeff is the exact integer step of update u on tensor ti, whose seed is s:
// Δ = Coeff·zInt on every element. It is −η·ĝ·2^(Exp+k)/σ (k: the
// estimator's scale exponent of the tensor, 0 under MeZO), stochastically
// rounded with a uniform drawn from (s, ti), so it is unbiased and identical
// everywhere; 0 on a tensor outside the update's estimator group.
func (e *Engine) Coeff(u Update, s Seed, ti int) int32 {
	t := e.w.Tensors[ti]
	if !e.active(s, ti) {
		return 0
	}
	x := float64(-e.cfg.LRAt(u.Sample) * u.Grad())
	x = math.Ldexp(x, t.Exp+e.scale[ti]) / e.cfg.Dist.sigma()
	fl := math.Floor(x)
	if s.uniform(auxBlockCoeff+uint64(ti)) < x-fl {
		fl++
	}
	return int32(max(-maxCoeff, min(maxCoeff, fl)))
}

// Apply adds every update in us to the weights: θ ← θ − η·ĝ·z(seed) for each,
// in one pass over memory for the whole batch, in parallel over chunks. The
// result does not depend on the order of us, nor on how updates are split
// across calls. Elements whose true value leaves int32 are wrapped and counted
// exactly (see Tensor and Weights.Overflow), never silently.
func (e *Engine) Apply(us []Update) { e.apply(us, 1) }

// Remove subtracts exactly what Apply(us) added: the same coefficients,
// negated, through the same kernels. Removing updates that were applied (in
// any order and batching, interleaved with other applies) leaves the weights
// equal to applying only the others. Removing an update that was not applied
// is the caller's error; the engine cannot tell.
func (e *Engine) Remove(us []Update) { e.apply(us, -1) }

// apply adds sign·Coeff·zInt for every update in us. In a pool-mode run the
// updates' coefficients are first summed per pool seed (PoolSums), which
// adds the same integers to every element.
func (e *Engine) apply(us []Update, sign int32) {
	if len(us) == 0 {
		return
	}
	if e.cfg.Pool > 0 {
		ps := e.NewPoolSums()
		ps.add(us, sign)
		e.ApplySums(ps)
		return
	}
	e.run(e.plan(us, sign))
}

// plan is every trainable tensor's applyPlan for sign·us (nil where every
// coefficient is 0), outside pool mode.
func (e *Engine) plan(us []Update, sign int32) []*applyPlan {
	seeds := make([]Seed, len(us))
	for k, u := range us {
		seeds[k] = DeriveSeed(e.cfg.Run, u.Machine, u.Sample)
	}
	plans := make([]*applyPlan, len(e.w.Tensors))
	for ti, t := range e.w.Tensors {
		if !t.Trainable {
			continue
		}
		p := &applyPlan{seeds: seeds}
		for k, u := range us {
			p.add(int64(sign*e.Coeff(u, seeds[k], ti)), e.cfg.Dist)
		}
		if p.delta > 0 {
			plans[ti] = p
		}
	}
	return plans
}

// run adds every plan to its tensor (nil plans are skipped) in one pass over
// memory, in parallel over chunks, on the fast wrapping kernels where no
// element can cross the int32 boundary and on the exact path elsewhere.
func (e *Engine) run(plans []*applyPlan) {
	e.flushDeferred()
	e.prepare(plans)
	e.runChunks(plans)
}

// prepare decides each plan's path: the fast wrapping kernels (the tensor's
// bound grows by the batch's worst case) where no element can cross the int32
// boundary, the exact path (p.slow set) elsewhere.
func (e *Engine) prepare(plans []*applyPlan) {
	rescan := false
	for ti, t := range e.w.Tensors {
		if p := plans[ti]; p != nil {
			rescan = rescan || !fits(t.qmax, p.delta)
		}
	}
	if rescan {
		// The cached bound is conservative; the exact max|Q| usually leaves
		// room (honest random walks grow like √N, the bound like N).
		e.w.rescan(func(ti int, t *Tensor) bool { return plans[ti] != nil && !fits(t.qmax, plans[ti].delta) })
	}
	for ti, t := range e.w.Tensors {
		if p := plans[ti]; p != nil {
			if fits(t.qmax, p.delta) && !e.exactOnly {
				t.qmax += p.delta
			} else {
				p.slow = &slowAcc{}
				e.exactRuns++
			}
		}
	}
}

// runChunks adds every plan prepare has seen to its tensor.
func (e *Engine) runChunks(plans []*applyPlan) {
	dist := e.cfg.Dist
	e.w.forChunks(func(ti int, _ *Tensor) bool { return plans[ti] != nil }, func(ti int, t *Tensor, lo, hi int) {
		p := plans[ti]
		d := t.Q[lo:hi]
		first := t.Offset + uint64(lo)
		switch {
		case p.slow != nil:
			p.applyExact(t, dist, lo, hi)
		case dist == Gauss4:
			p.applyGauss(d, first)
		default:
			p.applyRademacher(d, first)
		}
	})
	for ti, t := range e.w.Tensors {
		if p := plans[ti]; p != nil && p.slow != nil {
			t.qmax = p.slow.qmax
		}
	}
	e.stale = true
}

// qLimit is where int32 ends: |Q| ≤ qLimit−1 cannot have wrapped.
const qLimit = 1 << 31

// fits reports whether a tensor with max|Q| ≤ bound can take a batch whose
// worst case per element is delta without any element crossing the int32
// boundary, so that the wrapping fast kernels are exact.
func fits(bound, delta int64) bool { return bound+delta < qLimit }

// slowAcc gathers what the chunks of one tensor on the exact path report.
type slowAcc struct {
	mu   sync.Mutex
	qmax int64
}

// applyExact is the exact path for one chunk: each element's batch sum in
// int64, the wrapped int32 written back, every crossing of the int32 boundary
// recorded in the tensor's net wrap counts (entries that return to zero are
// deleted). It serves both distributions through the reference Dist.Fill.
func (p *applyPlan) applyExact(t *Tensor, dist Dist, lo, hi int) {
	d := t.Q[lo:hi]
	sum := make([]int64, len(d))
	z := make([]int32, len(d))
	for k, s := range p.seeds {
		c := p.wide[k]
		if c == 0 {
			continue
		}
		dist.Fill(s, t.Offset+uint64(lo), z)
		for i, zi := range z {
			sum[i] += c * int64(zi)
		}
	}
	type crossing struct {
		i int
		k int64
	}
	var cross []crossing
	var m int64
	for i, q := range d {
		v := int64(q) + sum[i]
		w := int32(v) // two's-complement wrap
		if k := (v - int64(w)) >> 32; k != 0 {
			cross = append(cross, crossing{lo + i, k})
		}
		d[i] = w
		m = max(m, absQ(w))
	}
	a := p.slow
	a.mu.Lock()
	defer a.mu.Unlock()
	a.qmax = max(a.qmax, m)
	for _, c := range cross {
		if t.wraps == nil {
			t.wraps = make(map[int]int64)
		}
		if k := t.wraps[c.i] + c.k; k != 0 {
			t.wraps[c.i] = k
		} else {
			delete(t.wraps, c.i)
		}
	}
}

// applyPlan holds what every chunk of one tensor needs for a batch of updates:
// one coefficient per seed, carrying the batch's sign (Coeff for Apply, −Coeff
// for Remove; the clamp is symmetric, so −Coeff never overflows). In a
// pool-mode run a seed is a pool seed and its coefficient the exact sum of its
// updates' coefficients, which may leave int32: the wrapping kernels take it
// modulo 2^32 (exact, since Q is kept modulo 2^32), the exact path in full.
type applyPlan struct {
	seeds []Seed
	wide  []int64 // the exact coefficients
	c     []int32 // wide modulo 2^32
	twoC  []int32
	// sumC lets the kernels add ±c as sumC − Σ 2c·bit over the set bits.
	sumC int32
	// delta is the batch's worst case on one element, Σ|c|·max|zInt|
	// (saturating at 2^62).
	delta int64
	slow  *slowAcc // set when the tensor takes the exact path
}

// add appends the next seed's coefficient c (p.seeds holds the seeds).
func (p *applyPlan) add(c int64, d Dist) {
	p.wide = append(p.wide, c)
	p.c = append(p.c, int32(c))
	p.twoC = append(p.twoC, int32(2*c))
	p.sumC += int32(c)
	p.delta = min(p.delta+min(max(c, -c), 1<<40)*d.maxZ(), 1<<62)
}

// lanePtr is the address of lane l's first word in a Philox output array.
func lanePtr(out *philoxOut, l int) unsafe.Pointer { return unsafe.Pointer(&out[0][l]) }

// applyRademacher adds the batch to d, whose first element has stream index
// first (a multiple of 128). One update: 16 consecutive blocks per Philox call.
// Several: per block, every update's block in Philox calls of 16 updates each.
func (p *applyPlan) applyRademacher(d []int32, first uint64) {
	full := len(d) / 128
	b0 := first / 128
	if len(p.seeds) == 1 {
		ph := philoxPool.Get().(*philoxScratch) // not a heap object per chunk
		defer philoxPool.Put(ph)
		in, out := &ph.in, &ph.out
		setSeed(in, p.seeds[0])
		for blk := 0; blk < full; blk += 16 {
			setBlocks(in, b0+uint64(blk), true)
			philox16(in, out)
			for l := range min(16, full-blk) {
				signAdd((*[128]int32)(d[(blk+l)*128:]), lanePtr(out, l), &p.twoC[0], 1, p.sumC)
			}
		}
	} else {
		ins := make([]philoxIn, (len(p.seeds)+15)/16)
		outs := make([]philoxOut, len(ins))
		for ch := range ins {
			setKeys(&ins[ch], ch*16, p.seeds)
		}
		for blk := range full {
			for ch := range ins {
				setBlocks(&ins[ch], b0+uint64(blk), false)
				philox16(&ins[ch], &outs[ch])
			}
			signAdd((*[128]int32)(d[blk*128:]), lanePtr(&outs[0], 0), &p.twoC[0], len(p.seeds), p.sumC)
		}
	}
	if tail := d[full*128:]; len(tail) > 0 {
		for k, s := range p.seeds {
			blk := s.Block(b0 + uint64(full))
			for i := range tail {
				m := -int32(blk[i>>5] >> (i & 31) & 1)
				tail[i] += (p.c[k] ^ m) - m
			}
		}
	}
}

// setKeys puts seeds[from:from+16]'s streams and keys in lanes 0..15.
func setKeys(in *philoxIn, from int, seeds []Seed) {
	for l := 0; l < 16 && from+l < len(seeds); l++ {
		s := seeds[from+l]
		in[2][l], in[3][l], in[4][l], in[5][l] = s.Stream[0], s.Stream[1], s.Key[0], s.Key[1]
	}
}

// setSeed puts one seed in all 16 lanes, for consecutive blocks of one stream.
func setSeed(in *philoxIn, s Seed) {
	for l := range 16 {
		in[2][l], in[3][l], in[4][l], in[5][l] = s.Stream[0], s.Stream[1], s.Key[0], s.Key[1]
	}
}

// setBlocks sets every lane's block index: b+l when consecutive, else b.
func setBlocks(in *philoxIn, b uint64, consecutive bool) {
	for l := range uint64(16) {
		bl := b
		if consecutive {
			bl += l
		}
		in[0][l], in[1][l] = uint32(bl), uint32(bl>>32)
	}
}

// applyGauss adds c·zInt per update; the optional distribution takes the simple path.
func (p *applyPlan) applyGauss(d []int32, first uint64) {
	z := make([]int32, len(d))
	for k, s := range p.seeds {
		Gauss4.Fill(s, first, z)
		c := p.c[k]
		for i := range d {
			d[i] += c * z[i]
		}
	}
}

// EpsGrid is ε on tensor ti's grid in units of the integer-valued z
// (docs/PROTOCOL.md §6: ε_t); 0 for a frozen tensor.
func (e *Engine) EpsGrid(ti int) int32 { return e.epsQ[ti] }
