package zo

import "sync"

// Fused apply. A peer's step first applies the updates it took since its last
// step (its own and its peers'), then runs two forward passes that derive the
// views from Q. Done apart, the apply is one more pass over the int32 weights,
// read and written: on GPT-2 small about 7% of a forward pass. ApplyStep
// instead adds the updates to each range of Q in the loop that derives the
// first forward pass's view of it, block by block while the block is in L1,
// so no separate full-weights pass remains.

// deferred is an apply that ApplyStep has planned and prepared (bounds
// raised: no element can cross the int32 boundary, so the wrapping kernels are
// exact in any order) but not written everywhere yet: elements [0, done[ti])
// of tensor ti hold plans[ti], the others do not.
type deferred struct {
	plans []*applyPlan // nil: nothing pending on that tensor (any more)
	done  []int
}

// ApplyStep is Apply(us) followed by Step(loss, s), with the apply fused into
// the forward passes: a range of a tensor that FillView derives from where the
// tensor's applied prefix ends gets the updates added to Q in the same loop
// that derives its view, so Q is read once and written once for both. A range
// a pass reads ahead of that prefix (an embedding's looked-up rows) is derived
// with the updates added to a copy, leaving Q as it is; whatever the passes
// did not write is applied before ApplyStep returns. The weights then hold
// exactly what Apply(us) gives, bit for bit, also when the step fails; the
// losses are Step's at those weights. What Apply would take on the exact path
// (an element might leave int32), tensors that hold a materialised View,
// pool-mode runs and the Gauss4 distribution are applied first, as Apply does.
func (e *Engine) ApplyStep(us []Update, loss Loss, s Seed) (StepResult, error) {
	e.deferApply(us)
	defer e.flushDeferred()
	return e.Step(loss, s)
}

// deferApply applies us now where it cannot wait (see ApplyStep) and leaves
// the rest in e.pend.
func (e *Engine) deferApply(us []Update) {
	e.flushDeferred()
	if len(us) == 0 {
		return
	}
	if e.cfg.Pool > 0 || e.cfg.Dist != Rademacher {
		e.apply(us, 1)
		return
	}
	now := e.plan(us, 1)
	e.prepare(now)
	later := make([]*applyPlan, len(now))
	waits := false
	for ti, p := range now {
		if p != nil && p.slow == nil && e.w.Tensors[ti].View == nil {
			later[ti], now[ti], waits = p, nil, true
		}
	}
	e.runChunks(now)
	if waits {
		e.pend = &deferred{plans: later, done: make([]int, len(later))}
	}
}

// flushDeferred applies what the forward passes have not written of the
// deferred apply, if any: after it, Q holds every update applied.
func (e *Engine) flushDeferred() {
	d := e.pend
	if d == nil {
		return
	}
	e.pend = nil
	e.w.forChunks(func(ti int, _ *Tensor) bool { return d.plans[ti] != nil }, func(ti int, t *Tensor, lo, hi int) {
		if lo = max(lo, d.done[ti]); lo < hi {
			d.plans[ti].applyRange(t, lo, hi)
		}
	})
}

// fillDeferred is FillView on a tensor with a deferred apply: the applied
// prefix is derived as usual; a range starting where the prefix ends is
// applied and derived in one loop, and the prefix grows over it; a range
// beyond the prefix is derived from Q plus the updates without writing Q.
func (e *Engine) fillDeferred(ti, lo int, dst []float32) {
	d, t := e.pend, e.w.Tensors[ti]
	hi, done := lo+len(dst), d.done[ti]
	if lo < done {
		m := min(hi, done)
		e.fillView(ti, lo, dst[:m-lo])
		dst, lo = dst[m-lo:], m
	}
	if lo == hi {
		return
	}
	f := fusion{p: d.plans[ti], t: t, write: lo == done}
	if e.view.perturbs(e, ti) {
		f.pert, f.seed, f.eps = true, e.view.seed, e.view.sign*e.epsQ[ti]
	}
	if len(dst) < 2*fillParallelMin {
		f.run(lo, dst)
	} else {
		parallelAligned(lo, len(dst), func(a, b int) { f.run(lo+a, dst[a:b]) })
	}
	if f.write {
		if d.done[ti] = hi; hi == t.Len() {
			d.plans[ti] = nil
		}
	}
}

// fusion is one tensor's deferred plan p and the view a pass must see:
// perturbed by eps·z(seed) when pert, else canonical. write: add p to Q
// itself; otherwise to a copy.
type fusion struct {
	p     *applyPlan
	t     *Tensor
	write bool
	pert  bool
	seed  Seed
	eps   int32
}

// fuseWork is a fusion's scratch: Philox inputs and outputs for the plan's
// seeds (16 lanes per Philox call) and the perturbation's, and the copy a
// read-only fusion works on.
type fuseWork struct {
	ins     []philoxIn
	outs    []philoxOut
	pin     philoxIn
	pout    philoxOut
	scratch [fusePiece]int32
}

// fusePiece is how many elements a read-only fusion copies at a time.
const fusePiece = 16 * 128

var fusePool = sync.Pool{New: func() any { return new(fuseWork) }}

// run derives elements [lo, lo+len(v)) of the tensor's view into v, with the
// plan added to Q there (write) or to a copy.
func (f *fusion) run(lo int, v []float32) {
	w := fusePool.Get().(*fuseWork)
	defer fusePool.Put(w)
	k := len(f.p.seeds)
	if n := (k + 15) / 16; len(w.ins) < n {
		w.ins, w.outs = make([]philoxIn, n), make([]philoxOut, n)
	}
	if k == 1 {
		setSeed(&w.ins[0], f.p.seeds[0])
	} else {
		for ch := range (k + 15) / 16 {
			setKeys(&w.ins[ch], ch*16, f.p.seeds)
		}
	}
	if f.pert {
		setSeed(&w.pin, f.seed)
	}
	first := f.t.Offset + uint64(lo)
	if f.write {
		f.blocks(w, f.t.Q[lo:lo+len(v)], first, v)
		return
	}
	for a := 0; a < len(v); {
		// Pieces after the first start on a Philox block.
		b := min(len(v), a+fusePiece-int((first+uint64(a))%alignElems))
		q := w.scratch[:b-a]
		copy(q, f.t.Q[lo+a:lo+b])
		f.blocks(w, q, first+uint64(a), v[a:b])
		a = b
	}
}

// blocks adds the plan to q, whose first element has stream index first, and
// writes its view into v: the elements before the first whole Philox block
// and after the last one element by element, the whole blocks 16 at a time,
// each applied and derived while it is in cache, through the kernels Apply
// and FillView use (so the bits are theirs).
func (f *fusion) blocks(w *fuseWork, q []int32, first uint64, v []float32) {
	sc, p := f.t.scale(), f.p
	head := min(len(q), int((alignElems-first%alignElems)%alignElems))
	f.edge(q[:head], first, v[:head], sc)
	q, v, first = q[head:], v[head:], first+uint64(head)
	full, b0 := len(q)/128, first/128
	k, chunks := len(p.seeds), (len(p.seeds)+15)/16
	for blk := 0; blk < full; blk += 16 {
		if k == 1 {
			setBlocks(&w.ins[0], b0+uint64(blk), true)
			philox16(&w.ins[0], &w.outs[0])
		}
		if f.pert {
			setBlocks(&w.pin, b0+uint64(blk), true)
			philox16(&w.pin, &w.pout)
		}
		for l := range min(16, full-blk) {
			at := (blk + l) * 128
			qb, vb := (*[128]int32)(q[at:]), (*[128]float32)(v[at:])
			if k == 1 {
				signAdd(qb, lanePtr(&w.outs[0], l), &p.twoC[0], 1, p.sumC)
			} else {
				for ch := range chunks {
					setBlocks(&w.ins[ch], b0+uint64(blk+l), false)
					philox16(&w.ins[ch], &w.outs[ch])
				}
				signAdd(qb, lanePtr(&w.outs[0], 0), &p.twoC[0], k, p.sumC)
			}
			if f.pert {
				perturbBlock(qb, vb, lanePtr(&w.pout, l), f.eps, sc)
			} else {
				canonicalView(qb[:], vb[:], sc)
			}
		}
	}
	at := full * 128
	f.edge(q[at:], first+uint64(at), v[at:], sc)
}

// edge is blocks for a run of elements within one Philox block.
func (f *fusion) edge(q []int32, first uint64, v []float32, sc float32) {
	f.p.applyScalar(q, first)
	if f.pert {
		perturbScalar(f.seed, f.eps, first, q, v, sc)
	} else {
		canonicalView(q, v, sc)
	}
}

// applyRange adds the plan to tensor t's elements [lo, hi), which may start
// and end anywhere: the applyRademacher kernels from the first whole block on.
func (p *applyPlan) applyRange(t *Tensor, lo, hi int) {
	d, first := t.Q[lo:hi], t.Offset+uint64(lo)
	head := min(len(d), int((alignElems-first%alignElems)%alignElems))
	p.applyScalar(d[:head], first)
	if len(d) > head {
		p.applyRademacher(d[head:], first+uint64(head))
	}
}

// applyScalar adds the plan to d element by element; d's first element has
// stream index first.
func (p *applyPlan) applyScalar(d []int32, first uint64) {
	for k, s := range p.seeds {
		var blk [4]uint32
		for i := range d {
			j := first + uint64(i)
			if i == 0 || j%128 == 0 {
				blk = s.Block(j / 128)
			}
			m := -int32(blk[j%128>>5] >> (j & 31) & 1)
			d[i] += (p.c[k] ^ m) - m
		}
	}
}
