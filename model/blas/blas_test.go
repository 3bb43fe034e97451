package blas

import (
	"math/rand/v2"
	"testing"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
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
