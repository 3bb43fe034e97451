package model

import (
	"math"
	"runtime"
	"sync"
)

// parallelRows runs fn over [0, rows) split across the CPUs, when there is
// enough work (rows·cost element operations) to pay for the goroutines.
func parallelRows(rows, cost int, fn func(lo, hi int)) {
	p := min(runtime.GOMAXPROCS(0), rows)
	if p <= 1 || rows*cost < 1<<15 {
		fn(0, rows)
		return
	}
	var wg sync.WaitGroup
	for i := range p {
		lo, hi := rows*i/p, rows*(i+1)/p
		wg.Go(func() { fn(lo, hi) })
	}
	wg.Wait()
}

// normRows is LayerNorm over each row of x ([rows, d]): zero mean, unit
// variance, scale w, shift b; or RMSNorm (rms set, b nil): no mean, no shift.
func normRows(out, x, w, b []float32, d int, eps float64, rms bool) {
	parallelRows(len(x)/d, d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := x[r*d:(r+1)*d], out[r*d:(r+1)*d]
			var mean float64
			if !rms {
				for _, v := range xr {
					mean += float64(v)
				}
				mean /= float64(d)
			}
			var ss float64
			for _, v := range xr {
				c := float64(v) - mean
				ss += c * c
			}
			inv := 1 / math.Sqrt(ss/float64(d)+eps)
			m32, inv32 := float32(mean), float32(inv)
			if b == nil {
				for i, v := range xr {
					or[i] = (v - m32) * inv32 * w[i]
				}
				continue
			}
			for i, v := range xr {
				or[i] = (v-m32)*inv32*w[i] + b[i]
			}
		}
	})
}

// addBias: out = x + b broadcast over the rows.
func addBias(out, x, b []float32) {
	d := len(b)
	parallelRows(len(x)/d, d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := x[r*d:(r+1)*d], out[r*d:(r+1)*d]
			for i, v := range xr {
				or[i] = v + b[i]
			}
		}
	})
}

// geluBias: out = gelu(x + b) with GPT-2's tanh approximation, written as
// z·(1 − 1/(e^{2u}+1)) with u = √(2/π)·(z + 0.044715·z³); out may be x.
func geluBias(out, x, b []float32) {
	d := len(b)
	const c = 0.7978845608028654 // √(2/π)
	parallelRows(len(x)/d, 20*d, func(lo, hi int) {
		var e [256]float32
		for r := lo; r < hi; r++ {
			xr, or := x[r*d:(r+1)*d], out[r*d:(r+1)*d]
			for k := 0; k < d; k += len(e) {
				n := min(len(e), d-k)
				xs, os, bs, es := xr[k:k+n], or[k:k+n], b[k:k+n], e[:n]
				for i, v := range xs {
					z := v + bs[i]
					es[i] = 2 * c * (z + 0.044715*z*z*z)
				}
				expAffine(es, es, 1, 0)
				for i, v := range xs {
					z := v + bs[i]
					os[i] = z * (1 - 1/(es[i]+1))
				}
			}
		}
	})
}

// swiGLU: out = silu(g)·u = g/(1+e^{−g})·u; out may be g.
func swiGLU(out, g, u []float32, d int) {
	parallelRows(len(g)/d, 20*d, func(lo, hi int) {
		var e [256]float32
		for k := lo * d; k < hi*d; k += len(e) {
			n := min(len(e), hi*d-k)
			gs, us, os, es := g[k:k+n], u[k:k+n], out[k:k+n], e[:n]
			expAffine(es, gs, -1, 0)
			for i, z := range gs {
				os[i] = z / (1 + es[i]) * us[i]
			}
		}
	})
}
