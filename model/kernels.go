package model

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernel is a gorgonia Op for the element-wise and row-wise parts of a
// transformer block (norms, activations, embedding lookup, attention), written
// over the operands' float32 slices. gorgonia's own versions of these are
// chains of ten or more generic ops, each adding a pass over memory and
// ≈0.1 ms of machine overhead; the matrix products stay gorgonia's (G.Mul).
type kernel struct {
	name string
	id   uint64 // distinct per instance so gorgonia never merges two kernels
	in   []int  // rank of each operand
	out  tensor.Shape
	run  func(out []float32, in [][]float32)
	buf  *tensor.Dense // output kept across runs: the tape machine frees every register on Reset
}

var kernelIDs atomic.Uint64

// apply adds a kernel node computing out (of the given shape) from the operands.
func apply(name string, out tensor.Shape, run func(out []float32, in [][]float32), operands ...*G.Node) (*G.Node, error) {
	k := &kernel{name: name, id: kernelIDs.Add(1), out: out, run: run}
	for _, o := range operands {
		k.in = append(k.in, o.Dims())
	}
	n, err := G.ApplyOp(k, operands...)
	if err != nil {
		return nil, fmt.Errorf("model: building %s: %w", name, err)
	}
	return n, nil
}

func (k *kernel) Arity() int { return len(k.in) }

func (k *kernel) Type() hm.Type {
	ts := make([]hm.Type, 0, len(k.in)+1)
	for _, d := range k.in {
		ts = append(ts, G.TensorType{Dims: d, Of: tensor.Float32})
	}
	ts = append(ts, G.TensorType{Dims: len(k.out), Of: tensor.Float32})
	return hm.NewFnType(ts...)
}

func (k *kernel) InferShape(...G.DimSizer) (tensor.Shape, error) { return k.out.Clone(), nil }

func (k *kernel) Do(in ...G.Value) (G.Value, error) {
	if k.buf == nil {
		k.buf = tensor.New(tensor.WithShape(k.out.Clone()...), tensor.Of(tensor.Float32))
	}
	return k.UsePreallocDo(k.buf, in...)
}

// UsePreallocDo lets the tape machine reuse the output buffer across runs.
func (k *kernel) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != len(k.in) {
		return nil, fmt.Errorf("model: %s: %d operands, want %d", k.name, len(in), len(k.in))
	}
	out, ok := prealloc.Data().([]float32)
	if !ok || len(out) != k.out.TotalSize() {
		return nil, fmt.Errorf("model: %s: bad output buffer %T", k.name, prealloc.Data())
	}
	args := make([][]float32, len(in))
	for i, v := range in {
		if args[i], ok = v.Data().([]float32); !ok {
			return nil, fmt.Errorf("model: %s: operand %d is %T, want []float32", k.name, i, v.Data())
		}
	}
	k.run(out, args)
	return prealloc, nil
}

func (k *kernel) ReturnsPtr() bool     { return false }
func (k *kernel) CallsExtern() bool    { return false }
func (k *kernel) OverwritesInput() int { return -1 }
func (k *kernel) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s#%d", k.name, k.id)
}
func (k *kernel) Hashcode() uint32 {
	h := fnv.New32a()
	k.WriteHash(h)
	return h.Sum32()
}
func (k *kernel) String() string { return k.name }

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

// geluBias: out = gelu(x + b) with GPT-2's tanh approximation.
func geluBias(out, x, b []float32) {
	d := len(b)
	const c = 0.7978845608028654 // √(2/π)
	parallelRows(len(x)/d, 20*d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := x[r*d:(r+1)*d], out[r*d:(r+1)*d]
			for i, v := range xr {
				z := float64(v + b[i])
				// 1 + tanh(u) = 2 − 2/(e^{2u}+1)
				or[i] = float32(z * (1 - 1/(math.Exp(2*c*(z+0.044715*z*z*z))+1)))
			}
		}
	})
}

// swiGLU: out = silu(g)·u.
func swiGLU(out, g, u []float32, d int) {
	parallelRows(len(g)/d, 20*d, func(lo, hi int) {
		for i := lo * d; i < hi*d; i++ {
			z := float64(g[i])
			out[i] = float32(z/(1+math.Exp(-z))) * u[i]
		}
	})
}
