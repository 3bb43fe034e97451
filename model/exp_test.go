package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The exp kernels agree with math.Exp to a few ulp over the whole clamped
// range, for every length (the vector body and the scalar tail), and keep NaN.
func TestExpKernels(t *testing.T) {
	if !hasExpAsm {
		t.Log("no assembly kernels on this CPU or build: checking the math.Exp fallback")
	}
	r := rand.New(rand.NewPCG(1, 1))
	for n := range 70 {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(r.Float64()*174 - 86)
			if r.IntN(4) == 0 {
				src[i] = float32(r.NormFloat64())
			}
		}
		got := make([]float32, n)
		for _, ab := range [][2]float32{{1, 0}, {-1, 0}, {1, -2.5}, {0.5, 1}} {
			expAffine(got, src, ab[0], ab[1])
			var want float64
			for i, x := range src {
				y := float64(ab[0]*x + ab[1])
				if y < -86 || y > 88 {
					continue
				}
				e := math.Exp(y)
				if rel := math.Abs(float64(got[i])-e) / e; rel > 3e-7 {
					t.Fatalf("n=%d a=%v b=%v: e^%v = %v, want %v (relative error %.2g)", n, ab[0], ab[1], y, got[i], e, rel)
				}
			}
			if ab[0] == 1 {
				var s float64
				for i, x := range src {
					if float64(x+ab[1]) <= 88 {
						s += float64(got[i])
						want += math.Exp(float64(x + ab[1]))
					}
				}
				if allBelow(src, 88-ab[1]) {
					if got := expSum(src, ab[1]); math.Abs(got-want) > 1e-6*want+1e-30 {
						t.Fatalf("n=%d: expSum %v, want %v", n, got, want)
					}
				}
			}
		}
		if n > 0 {
			m := src[0]
			for _, x := range src {
				m = max(m, x)
			}
			if got := maxOf(src); got != m {
				t.Fatalf("n=%d: max %v, want %v", n, got, m)
			}
			src[r.IntN(n)] = float32(math.NaN())
			if got := maxOf(src); got == got {
				t.Fatalf("n=%d: max of a slice with a NaN is %v", n, got)
			}
			expAffine(got, src, 1, 0)
			nans := 0
			for _, v := range got {
				if v != v {
					nans++
				}
			}
			if nans != 1 {
				t.Fatalf("n=%d: %d NaN results for one NaN input", n, nans)
			}
			if s := expSum(src, 0); s == s {
				t.Fatalf("n=%d: expSum over a NaN is %v", n, s)
			}
		}
	}
}

func allBelow(x []float32, lim float32) bool {
	for _, v := range x {
		if v > lim {
			return false
		}
	}
	return true
}

func BenchmarkExpSum(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = -float32(i%200) * 0.07
	}
	for b.Loop() {
		expSum(x, 0)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/elem")
}
