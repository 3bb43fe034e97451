package zo

import (
	"runtime"
	"sync"
)

// Streamed views. A forward pass needs each tensor's float32 view only while
// the layer that reads it runs. After DropViews the weights hold Q alone (4
// bytes per parameter instead of 8), and the forward pass asks FillView for
// the values just before use, into a small buffer it reuses: the view is
// derived from Q on the fly, perturbed inside a Step, bit for bit what the
// materialised views hold (TestFillViewMatchesViews).

// viewState is the perturbation the forward passes of a Step run under.
type viewState struct {
	on   bool
	seed Seed
	sign int32
	part int // the estimator group the step perturbs; -1: every trainable tensor
}

// perturbs reports whether tensor ti is perturbed under v.
func (v viewState) perturbs(e *Engine, ti int) bool {
	return v.on && e.w.Tensors[ti].Trainable && (v.part < 0 || e.group[ti] == v.part) && (e.only == 0 || ti == e.only-1)
}

// DropViews releases every tensor's float32 view. Forward passes must then
// read values through FillView (Engine.FillView during a Step); SyncViews
// keeps only the bound on max|Q| it maintains.
func (w *Weights) DropViews() {
	for _, t := range w.Tensors {
		t.View = nil
	}
}

// FillView writes the canonical view float32(Q[i])·2^−Exp of tensor ti's
// elements [lo, lo+len(dst)) into dst: what SyncViews writes into View.
func (w *Weights) FillView(ti, lo int, dst []float32) {
	t := w.Tensors[ti]
	if len(dst) < 2*fillParallelMin { // no closure, no allocation
		canonicalView(t.Q[lo:lo+len(dst)], dst, t.scale())
		return
	}
	parallelFill(len(dst), func(a, b int) { canonicalView(t.Q[lo+a:lo+b], dst[a:b], t.scale()) })
}

// FillView writes tensor ti's elements [lo, lo+len(dst)) of the view a
// forward pass must see now: during Step, for a trainable tensor, the
// perturbed view float32(Q + sign·ε_t·zInt)·2^−Exp (docs/PROTOCOL.md §6);
// otherwise the canonical view. The perturbation is derived in the same pass
// over Q, so no full perturbed copy of the weights is ever written. Inside
// ApplyStep, the updates it applies are added to Q in that same pass too.
func (e *Engine) FillView(ti, lo int, dst []float32) {
	if e.pend != nil && e.pend.plans[ti] != nil {
		e.fillDeferred(ti, lo, dst)
		return
	}
	e.fillView(ti, lo, dst)
}

// fillView is FillView on weights that hold every update applied.
func (e *Engine) fillView(ti, lo int, dst []float32) {
	t := e.w.Tensors[ti]
	if !e.view.perturbs(e, ti) {
		e.w.FillView(ti, lo, dst)
		return
	}
	s, eps, dist := e.view.seed, e.view.sign*e.epsQ[ti], e.cfg.Dist
	if len(dst) < 2*fillParallelMin {
		perturbedView(t, s, eps, dist, lo, t.Q[lo:lo+len(dst)], dst)
		return
	}
	parallelAligned(lo, len(dst), func(a, b int) {
		perturbedView(t, s, eps, dist, lo+a, t.Q[lo+a:lo+b], dst[a:b])
	})
}

// parallelAligned is parallelFill over n elements of a tensor starting at
// element lo, split on 128-element boundaries of the tensor (its Offset is
// aligned to whole Philox blocks), so that every part but the edges takes
// whole blocks.
func parallelAligned(lo, n int, fn func(a, b int)) {
	parallelFill(n, func(a, b int) {
		// Both ends round down, so consecutive parts still meet.
		if a > 0 {
			a = (lo+a)/alignElems*alignElems - lo
		}
		if b < n {
			b = (lo+b)/alignElems*alignElems - lo
		}
		if a < b {
			fn(a, b)
		}
	})
}

// fillParallelMin is the element count below which a fill runs on the
// calling goroutine (≈ 10-30 µs of work).
const fillParallelMin = 1 << 16

// parallelFill runs fn over [0, n) split in GOMAXPROCS contiguous parts. The
// parts are disjoint, so the result does not depend on scheduling. fn may
// move its bounds as long as consecutive parts still tile [0, n).
func parallelFill(n int, fn func(a, b int)) {
	p := min(runtime.GOMAXPROCS(0), n/fillParallelMin)
	if p <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range p {
		a, b := n*i/p, n*(i+1)/p
		wg.Go(func() { fn(a, b) })
	}
	wg.Wait()
}

func canonicalView(q []int32, v []float32, sc float32) {
	v = v[:len(q)]
	for i := range q {
		v[i] = float32(q[i]) * sc
	}
}

// perturbedView writes v[i] = float32(q[i] + eps·zInt(first+i))·sc for the
// tensor's elements [lo, lo+len(q)), q = t.Q[lo:...]: the same kernels and
// expressions as Step's materialised perturbation.
func perturbedView(t *Tensor, s Seed, eps int32, dist Dist, lo int, q []int32, v []float32) {
	sc := t.scale()
	first := t.Offset + uint64(lo)
	if dist == Gauss4 {
		var z [1024]int32
		for a := 0; a < len(q); a += len(z) {
			n := min(len(z), len(q)-a)
			Gauss4.Fill(s, first+uint64(a), z[:n])
			qa, va := q[a:a+n], v[a:a+n]
			for i := range qa {
				va[i] = float32(qa[i]+eps*z[i]) * sc
			}
		}
		return
	}
	// Elements before the first whole block, then whole blocks 16 at a time,
	// then the tail, as Step's perturb does from a block boundary.
	head := min(len(q), int((alignElems-first%alignElems)%alignElems))
	perturbScalar(s, eps, first, q[:head], v[:head], sc)
	q, v, first = q[head:], v[head:], first+uint64(head)
	if len(q) < 128 {
		perturbScalar(s, eps, first, q, v, sc)
		return
	}
	ph := philoxPool.Get().(*philoxScratch)
	defer philoxPool.Put(ph)
	in, out := &ph.in, &ph.out
	setSeed(in, s)
	full := len(q) / 128
	for blk := 0; blk < full; blk += 16 {
		setBlocks(in, first/128+uint64(blk), true)
		philox16(in, out)
		for l := range min(16, full-blk) {
			at := (blk + l) * 128
			perturbBlock((*[128]int32)(q[at:]), (*[128]float32)(v[at:]), lanePtr(out, l), eps, sc)
		}
	}
	at := full * 128
	perturbScalar(s, eps, first+uint64(at), q[at:], v[at:], sc)
}

// philoxScratch is the kernels' input and output (they escape through the
// kernel variables, so a pool keeps them off the per-call heap).
type philoxScratch struct {
	in  philoxIn
	out philoxOut
}

var philoxPool = sync.Pool{New: func() any { return new(philoxScratch) }}

// perturbScalar is the Rademacher perturbed view of a run of elements within
// one Philox block, starting at stream index first.
func perturbScalar(s Seed, eps int32, first uint64, q []int32, v []float32, sc float32) {
	if len(q) == 0 {
		return
	}
	blk := s.Block(first / 128)
	for i := range q {
		j := (first + uint64(i)) % 128
		m := -int32(blk[j>>5] >> (j & 31) & 1)
		v[i] = float32(q[i]+(eps^m)-m) * sc
	}
}
