package zo

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
)

// benchElems is large enough (256 MiB of int32, beyond L3) that every pass streams from memory.
const benchElems = 1 << 26

func benchEngine(b *testing.B) *Engine {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	data := make([]float32, benchElems)
	for i := range data {
		data[i] = 0.02 * float32(rng.NormFloat64())
	}
	w, err := NewWeights([]TensorSpec{{Name: "w", Shape: []int{benchElems}, Data: data, Trainable: true}})
	if err != nil {
		b.Fatal(err)
	}
	e, err := NewEngine(Config{Run: "bench", Eps: 1e-3, LR: 1e-6}, w)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func reportPerElem(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchElems, "ns/elem")
}

// BenchmarkApply: one fused pass applying k updates. Bytes are the int32 weights read and written once.
func BenchmarkApply(b *testing.B) {
	e := benchEngine(b)
	for _, k := range []int{1, 4, 16, 64} {
		us := randomUpdates(rand.New(rand.NewPCG(uint64(k), 0)), k)
		b.Run(fmt.Sprintf("updates=%d", k), func(b *testing.B) {
			b.SetBytes(4 * benchElems)
			for b.Loop() {
				e.Apply(us)
			}
			reportPerElem(b)
		})
	}
}

// BenchmarkPerturb: one perturbed-view pass (read Q, write the float32 view).
func BenchmarkPerturb(b *testing.B) {
	e := benchEngine(b)
	s := DeriveSeed("bench", 1, 1)
	b.SetBytes(4 * benchElems)
	for b.Loop() {
		e.perturb(s, 1)
	}
	reportPerElem(b)
}

func axpyData() (x, y []float32) {
	x, y = make([]float32, benchElems), make([]float32, benchElems)
	for i := range x {
		x[i] = float32(i & 1023)
	}
	return x, y
}

// BenchmarkAxpyGo: y += a·x in a plain Go loop, the memory-bound baseline.
func BenchmarkAxpyGo(b *testing.B) {
	x, y := axpyData()
	b.SetBytes(4 * benchElems)
	for b.Loop() {
		a := float32(1e-3)
		for i := range y {
			y[i] += a * x[i]
		}
	}
	reportPerElem(b)
}

// BenchmarkAxpyGonum: the same through gonum's assembly kernel (single goroutine).
func BenchmarkAxpyGonum(b *testing.B) {
	x, y := axpyData()
	vx := blas32.Vector{N: benchElems, Inc: 1, Data: x}
	vy := blas32.Vector{N: benchElems, Inc: 1, Data: y}
	b.SetBytes(4 * benchElems)
	for b.Loop() {
		blas32.Axpy(1e-3, vx, vy)
	}
	reportPerElem(b)
}

func BenchmarkPhilox(b *testing.B) {
	var sink uint32
	for i := 0; b.Loop(); i++ {
		r0, _, _, _ := philox(uint32(i), 0, 1, 2, 3, 4)
		sink += r0
	}
	_ = sink
}

// BenchmarkCopy: copy() of the same length, the memory system's limit for a
// pass that reads and writes 4 bytes per element (an apply of one update moves
// the same bytes in place).
func BenchmarkCopy(b *testing.B) {
	src, dst := make([]int32, benchElems), make([]int32, benchElems)
	for i := range src {
		src[i] = int32(i)
	}
	b.SetBytes(4 * benchElems)
	for b.Loop() {
		copy(dst, src)
	}
	reportPerElem(b)
}

// BenchmarkPhilox16: the dispatched 16-lane kernel (AVX-512 where available).
func BenchmarkPhilox16(b *testing.B) {
	var in philoxIn
	var out philoxOut
	for i := 0; b.Loop(); i++ {
		in[0][0] = uint32(i)
		philox16(&in, &out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/16, "ns/block")
}

// BenchmarkFillView: deriving the view as a streamed forward pass does, one
// GPT-2-small-sized matrix (768×3072) at a time into one reused buffer, at θ
// (canonical) and inside a step (θ+εz).
func BenchmarkFillView(b *testing.B) {
	e := benchEngine(b)
	buf := make([]float32, 768*3072)
	for _, perturbed := range []bool{false, true} {
		b.Run(fmt.Sprintf("perturbed=%v", perturbed), func(b *testing.B) {
			e.view = viewState{}
			if perturbed {
				e.view = viewState{on: true, seed: DeriveSeed("bench", 1, 1), sign: 1}
			}
			b.SetBytes(4 * benchElems)
			for b.Loop() {
				for lo := 0; lo+len(buf) <= benchElems; lo += len(buf) {
					e.FillView(0, lo, buf)
				}
			}
			reportPerElem(b)
		})
	}
}

// BenchmarkFusedApply: the view derivation of a step's first forward pass
// (θ+εz, one GPT-2-small-sized matrix at a time) with a 1-update apply:
// fused into the derivation (ApplyStep's path), or apart first (Apply, then
// the derivation), against the derivation alone.
func BenchmarkFusedApply(b *testing.B) {
	e := benchEngine(b)
	e.w.DropViews()
	buf := make([]float32, 768*3072)
	us := []Update{{Machine: 2, Sample: 1, Exp: 121, Code: 64}}
	derive := func() {
		e.view = viewState{on: true, seed: DeriveSeed("bench", 1, 1), sign: 1}
		for lo := 0; lo+len(buf) <= benchElems; lo += len(buf) {
			e.FillView(0, lo, buf)
		}
		e.view = viewState{}
	}
	for _, mode := range []string{"derive-only", "fused", "apart"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(4 * benchElems)
			for b.Loop() {
				switch mode {
				case "fused":
					e.deferApply(us)
					derive()
					e.flushDeferred()
				case "apart":
					e.Apply(us)
					derive()
				default:
					derive()
				}
			}
			reportPerElem(b)
		})
	}
}
