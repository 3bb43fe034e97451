package model

import (
	"math"
	"runtime"
	"sync"

	gblas "gonum.org/v1/gonum/blas"

	"github.com/zopeer/zopeer/model/blas"
)

// packed is the input of one forward pass: sequences laid end to end as rows.
type packed struct {
	tokens, pos []int      // per row
	segs        []seg      // the real sequences' rows
	seqs        []Sequence // the sequences, as segs
}

type seg struct{ start, n int }

// attention is causal multi-head attention with grouped key/value heads over
// packed sequences: each sequence attends only within itself. Rows of q, k
// and v hold the heads side by side; GPT-2 passes one [rows, 3·d] operand.
type attention struct {
	heads, kvHeads, headDim int
	in                      *packed
	rope                    *rope // nil for learned positions
	qr, kr                  []float32
	scratch                 [][]float32 // one score matrix per worker
}

// rope holds cos and sin of position·θ^(−2i/headDim) for i < headDim/2,
// rounded as Hugging Face computes them (float32 angle).
type rope struct {
	half     int
	cos, sin []float32 // [position][half]
}

func newRope(positions, headDim int, theta float64, l3 *Llama3Rope) *rope {
	half := headDim / 2
	r := &rope{half: half, cos: make([]float32, positions*half), sin: make([]float32, positions*half)}
	for i := range half {
		inv := float32(1 / math.Pow(theta, float64(2*i)/float64(headDim)))
		if l3 != nil {
			inv = l3.scale(inv)
		}
		for p := range positions {
			a := float64(float32(p) * inv)
			r.cos[p*half+i], r.sin[p*half+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return r
}

// scale is transformers' _compute_llama3_parameters for one frequency.
func (l *Llama3Rope) scale(inv float32) float32 {
	f := float64(inv)
	wavelen := 2 * math.Pi / f
	switch {
	case wavelen < l.OriginalMaxPos/l.HighFreqFactor:
		return inv
	case wavelen > l.OriginalMaxPos/l.LowFreqFactor:
		return float32(f / l.Factor)
	}
	smooth := (l.OriginalMaxPos/wavelen - l.LowFreqFactor) / (l.HighFreqFactor - l.LowFreqFactor)
	return float32((1-smooth)*f/l.Factor + smooth*f)
}

// apply rotates every head of src ([rows, heads·2·half], row stride ld from
// column off) into dst ([rows, heads·2·half]) using Llama's rotate-half layout.
func (r *rope) apply(dst, src []float32, ld, off, heads int, pos []int) {
	w := heads * 2 * r.half
	parallelRows(len(pos), w, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			c, s := r.cos[pos[row]*r.half:][:r.half], r.sin[pos[row]*r.half:][:r.half]
			for h := range heads {
				x := src[row*ld+off+h*2*r.half:][:2*r.half]
				y := dst[row*w+h*2*r.half:][:2*r.half]
				for i := range r.half {
					x1, x2 := x[i], x[i+r.half]
					y[i] = x1*c[i] - x2*s[i]
					y[i+r.half] = x2*c[i] + x1*s[i]
				}
			}
		}
	})
}

func (a *attention) run(out []float32, in [][]float32) {
	qw, kw := a.heads*a.headDim, a.kvHeads*a.headDim
	var q, k, v []float32
	var ldq, ldk, ldv, qo, ko, vo int
	if len(in) == 1 {
		q, k, v = in[0], in[0], in[0]
		ldq, ldk, ldv = qw+2*kw, qw+2*kw, qw+2*kw
		qo, ko, vo = 0, qw, qw+kw
	} else {
		q, k, v = in[0], in[1], in[2]
		ldq, ldk, ldv = qw, kw, kw
	}
	if a.rope != nil {
		a.rope.apply(a.qr, q, ldq, qo, a.heads, a.in.pos)
		a.rope.apply(a.kr, k, ldk, ko, a.kvHeads, a.in.pos)
		q, k, ldq, ldk, qo, ko = a.qr, a.kr, qw, kw, 0, 0
	}
	ldo := qw // the packed rows are exactly the sequences': no padding to clear

	type job struct {
		s seg
		h int
	}
	jobs := make(chan job, len(a.in.segs)*a.heads)
	for _, s := range a.in.segs {
		for h := range a.heads {
			jobs <- job{s, h}
		}
	}
	close(jobs)
	workers := min(runtime.GOMAXPROCS(0), len(a.in.segs)*a.heads)
	longest := 0
	for _, s := range a.in.segs {
		longest = max(longest, s.n)
	}
	for len(a.scratch) < workers {
		a.scratch = append(a.scratch, nil)
	}
	for w := range workers {
		if cap(a.scratch[w]) < longest*longest {
			a.scratch[w] = make([]float32, longest*longest)
		}
	}
	bl := blas.Impl()
	scale := float32(1 / math.Sqrt(float64(a.headDim)))
	group := a.heads / a.kvHeads
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := range jobs {
				n, st, kh := j.s.n, j.s.start, j.h/group
				sc := a.scratch[w][:n*n]
				bl.Sgemm(gblas.NoTrans, gblas.Trans, n, n, a.headDim, scale,
					q[st*ldq+qo+j.h*a.headDim:], ldq, k[st*ldk+ko+kh*a.headDim:], ldk, 0, sc, n)
				causalSoftmax(sc, n)
				bl.Sgemm(gblas.NoTrans, gblas.NoTrans, n, a.headDim, n, 1,
					sc, n, v[st*ldv+vo+kh*a.headDim:], ldv, 0, out[st*ldo+j.h*a.headDim:], ldo)
			}
		})
	}
	wg.Wait()
}

// causalSoftmax turns each row i of the n×n scores into softmax over
// columns 0..i and zeroes the rest.
func causalSoftmax(s []float32, n int) {
	for i := range n {
		row := s[i*n : (i+1)*n]
		live := row[:i+1]
		expAffine(live, live, 1, -maxOf(live))
		var sum float64
		for _, e := range live {
			sum += float64(e)
		}
		inv := float32(1 / sum)
		for j := range live {
			live[j] *= inv
		}
		clear(row[i+1:])
	}
}
