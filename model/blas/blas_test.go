package blas

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/zopeer/zopeer/internal/cputime"
)

// TestSgemmMatchesGonum checks every transpose combination and strided
// operands against gonum's reference, with NaN guard bands after C.
func TestSgemmMatchesGonum(t *testing.T) {
	b := Impl()
	t.Logf("backend %+v", Current())
	r := rand.New(rand.NewPCG(1, 2))
	const pad = 3
	// Small (one call), tall (split by rows) and short (split by columns).
	for _, sz := range [][3]int{{37, 29, 53}, {300, 200, 300}, {4, 4096, 1100}} {
		testSgemm(t, b, r, sz[0], sz[1], sz[2], pad)
	}
}

func testSgemm(t *testing.T, b gblas.Float32, r *rand.Rand, m, n, k, pad int) {
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(r.NormFloat64())
		}
		return s
	}
	for _, tA := range []gblas.Transpose{gblas.NoTrans, gblas.Trans} {
		for _, tB := range []gblas.Transpose{gblas.NoTrans, gblas.Trans} {
			ar, ac := m, k
			if tA == gblas.Trans {
				ar, ac = k, m
			}
			br, bc := k, n
			if tB == gblas.Trans {
				br, bc = n, k
			}
			a, bb := fill(ar*(ac+pad)), fill(br*(bc+pad))
			c0 := fill(m*(n+pad) + 8)
			for i := m * (n + pad); i < len(c0); i++ {
				c0[i] = float32(nanGuard())
			}
			want := append([]float32(nil), c0...)
			got := append([]float32(nil), c0...)
			gonum.Implementation{}.Sgemm(tA, tB, m, n, k, 0.5, a, ac+pad, bb, bc+pad, 0.25, want, n+pad)
			b.Sgemm(tA, tB, m, n, k, 0.5, a, ac+pad, bb, bc+pad, 0.25, got, n+pad)
			for i := range want {
				d := want[i] - got[i]
				if want[i] != want[i] {
					if got[i] == got[i] {
						t.Fatalf("tA=%c tB=%c: guard band overwritten at %d", tA, tB, i)
					}
					continue
				}
				if tol := 1e-4 * (1 + abs(want[i])); d > tol || d < -tol {
					t.Fatalf("%dx%dx%d tA=%c tB=%c: c[%d] = %v, want %v", m, n, k, tA, tB, i, got[i], want[i])
				}
			}
		}
	}
}

func abs(x float32) float32 { return max(x, -x) }

func nanGuard() float64 { var z float64; return z / z }

func BenchmarkSgemm768(b *testing.B) {
	const m, n, k = 256, 768, 768
	x, w, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
	for i := range x {
		x[i] = 1
	}
	im := Impl()
	b.Logf("backend %+v", Current())
	b.SetBytes(0)
	for b.Loop() {
		im.Sgemm(gblas.NoTrans, gblas.NoTrans, m, n, k, 1, x, k, w, n, 0, c, n)
	}
	b.ReportMetric(2*m*n*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// gemm is one matrix product of a forward pass, done count times.
type gemm struct {
	m, n, k int
	tB      bool
	count   int
	perHead bool // attention: count independent products, run in parallel as the model runs them
}

// passShapes are the products of one 256-token forward pass (loss over 255
// target rows) of the bench shapes (node.Shapes), as model/exec.go issues them.
var passShapes = map[string][]gemm{
	"gpt2-small": {
		{256, 2304, 768, false, 12, false}, {256, 768, 768, false, 12, false},
		{256, 3072, 768, false, 12, false}, {256, 768, 3072, false, 12, false},
		{256, 256, 64, true, 12 * 12, true}, {256, 64, 256, false, 12 * 12, true},
		{255, 3072, 768, true, 16, false}, {255, 1105, 768, true, 1, false}, // the head, 3072 vocabulary rows at a time
	},
	"smollm-135m": {
		{256, 576, 576, true, 30, false}, {256, 192, 576, true, 60, false}, {256, 576, 576, true, 30, false},
		{256, 1536, 576, true, 60, false}, {256, 576, 1536, true, 30, false},
		{256, 256, 64, true, 30 * 9, true}, {256, 64, 256, false, 30 * 9, true},
		{255, 2048, 576, true, 24, false}, // the head, 2048 rows at a time (49152 in all)
	},
}

// BenchmarkSgemmPass runs every matrix product of one forward pass of a bench
// shape through Impl, with the same shapes, transposes and parallelism as the
// model: the ceiling `zopeer bench`'s forward GFLOP/s is compared with.
func BenchmarkSgemmPass(b *testing.B) {
	for _, name := range []string{"gpt2-small", "smollm-135m"} {
		b.Run(name, func(b *testing.B) {
			im := Impl()
			flops := 0.0
			type buf struct{ a, w, c []float32 }
			bufs := make([]buf, len(passShapes[name]))
			for i, g := range passShapes[name] {
				bufs[i] = buf{make([]float32, g.m*g.k), make([]float32, g.k*g.n), make([]float32, runtime.GOMAXPROCS(0)*g.m*g.n)}
				for j := range bufs[i].a {
					bufs[i].a[j] = 0.01
				}
				flops += 2 * float64(g.m*g.n*g.k*g.count)
			}
			cpu0 := cputime.Now()
			for b.Loop() {
				for i, g := range passShapes[name] {
					tB, ldb := gblas.NoTrans, g.n
					if g.tB {
						tB, ldb = gblas.Trans, g.k
					}
					x := bufs[i]
					if !g.perHead {
						for range g.count {
							im.Sgemm(gblas.NoTrans, tB, g.m, g.n, g.k, 1, x.a, g.k, x.w, ldb, 0, x.c, g.n)
						}
						continue
					}
					var wg sync.WaitGroup
					p := runtime.GOMAXPROCS(0)
					for w := range p {
						wg.Go(func() {
							for h := w; h < g.count; h += p {
								im.Sgemm(gblas.NoTrans, tB, g.m, g.n, g.k, 1, x.a, g.k, x.w, ldb, 0, x.c[w*g.m*g.n:], g.n)
							}
						})
					}
					wg.Wait()
				}
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
			b.ReportMetric((cputime.Now()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkSgemmTiny is the fixed cost of one call (8×8×8).
func BenchmarkSgemmTiny(b *testing.B) {
	const n = 8
	x, w, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	im := Impl()
	b.ReportAllocs()
	for b.Loop() {
		im.Sgemm(gblas.NoTrans, gblas.Trans, n, n, n, 1, x, n, w, n, 0, c, n)
	}
}
