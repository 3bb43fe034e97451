package zo

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestQuantizeRangeAndError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + rng.IntN(64)
		scale := math.Ldexp(1, rng.IntN(80)-40)
		g, u := make([]float64, n), make([]float64, n)
		for i := range g {
			g[i] = scale * rng.NormFloat64()
			u[i] = rng.Float64()
		}
		codes := make([]int8, n)
		exp, err := Quantize(g, u, codes)
		if err != nil {
			t.Fatal(err)
		}
		var m float64
		for _, v := range g {
			m = max(m, math.Abs(v))
		}
		step := math.Ldexp(1, int(exp)-codeBias)
		if m > CodeMax*step || m <= CodeMax*step/2 {
			t.Fatalf("exp %d is not the smallest that fits max|g| = %g", exp, m)
		}
		for i, c := range codes {
			if c < -CodeMax {
				t.Fatalf("code %d below -127", c)
			}
			if d := math.Abs(Dequantize(exp, c) - g[i]); d >= step || d >= m/63.5 {
				t.Fatalf("|ĝ−g| = %g, step %g, max %g", d, step, m)
			}
		}
	}
}

// Stochastic rounding is unbiased: averaged over uniforms, ĝ → g. The bound is
// five standard errors of the mean (rounding error is within one step).
func TestQuantizeUnbiased(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := []float64{1.0, 0.3337, -0.0123, 2.5e-3, -0.77}
	const trials = 20000
	sum := make([]float64, len(g))
	u := make([]float64, len(g))
	codes := make([]int8, len(g))
	var step float64
	for k := 0; k < trials; k++ {
		for i := range u {
			u[i] = rng.Float64()
		}
		exp, err := Quantize(g, u, codes)
		if err != nil {
			t.Fatal(err)
		}
		step = math.Ldexp(1, int(exp)-codeBias)
		for i, c := range codes {
			sum[i] += Dequantize(exp, c) - g[i]
		}
	}
	bound := 5 * step / 2 / math.Sqrt(trials)
	for i := range g {
		if bias := sum[i] / trials; math.Abs(bias) > bound {
			t.Errorf("g=%g: mean error %g exceeds %g", g[i], bias, bound)
		}
	}
	// Deterministic rounding would fail this test: round-to-nearest of 0.0123
	// with step 1/128 always gives 2/128, a bias of 0.0033.
}

func TestQuantizeEdges(t *testing.T) {
	codes := make([]int8, 2)
	if exp, err := Quantize([]float64{0, 0}, []float64{0.5, 0.5}, codes); err != nil || codes[0] != 0 || codes[1] != 0 || exp != 0 {
		t.Fatalf("zeros: exp %d codes %v err %v", exp, codes, err)
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := Quantize([]float64{1, bad}, []float64{0, 0}, codes); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
	if _, err := Quantize([]float64{math.Ldexp(1, 200), 0}, []float64{0, 0}, codes); err == nil {
		t.Error("2^200 is out of range: want an error")
	}
	if _, err := Quantize([]float64{1}, []float64{0, 0}, codes); err == nil {
		t.Error("length mismatch: want an error")
	}
	// Tiny gradients use the finest step and still round without bias.
	tiny := math.Ldexp(1, -140)
	exp, err := Quantize([]float64{tiny, -tiny}, []float64{0.99, 0.99}, codes)
	if err != nil || exp != 0 {
		t.Fatalf("tiny: exp %d err %v", exp, err)
	}
	// Exactly 127 steps fits; 127.5 needs the next exponent.
	for _, c := range []struct {
		g    float64
		want uint8
	}{{127, 128}, {127.5, 129}, {128, 129}, {64, 128}, {63.5, 127}} {
		exp, err := Quantize([]float64{c.g}, []float64{0}, codes[:1])
		if err != nil || exp != c.want {
			t.Errorf("g=%v: exp %d, want %d (err %v)", c.g, exp, c.want, err)
		}
	}
}

// Any sub-range regenerated on its own matches the full stream.
func TestSubrangeMatchesFullStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, d := range []Dist{Rademacher, Gauss4} {
		s := DeriveSeed("sub", 3, 4)
		full := make([]int32, 5000)
		d.Fill(s, 0, full)
		for k := 0; k < 200; k++ {
			lo := rng.IntN(len(full))
			hi := lo + rng.IntN(len(full)-lo+1)
			part := make([]int32, hi-lo)
			d.Fill(s, uint64(lo), part)
			for i := range part {
				if part[i] != full[lo+i] {
					t.Fatalf("%v [%d,%d): element %d differs", d, lo, hi, lo+i)
				}
			}
		}
		// Moments: Rademacher is ±1; Gauss4 has unit variance after scaling.
		var s1, s2 float64
		for _, z := range full {
			x := float64(z) / d.sigma()
			s1 += x
			s2 += x * x
		}
		n := float64(len(full))
		if mean, vr := s1/n, s2/n; math.Abs(mean) > 0.06 || math.Abs(vr-1) > 0.06 {
			t.Errorf("%v: mean %g variance %g", d, mean, vr)
		}
	}
}

// Nearby seeds do not give shifted copies of one stream.
func TestStreamsOfNearbySeedsAreUnrelated(t *testing.T) {
	const n = 4096
	a, b := make([]int32, n), make([]int32, n)
	Rademacher.Fill(DeriveSeed("r", 1, 1), 0, a)
	for _, s := range []Seed{DeriveSeed("r", 1, 2), DeriveSeed("r", 2, 1), DeriveSeed("s", 1, 1)} {
		Rademacher.Fill(s, 0, b)
		for shift := 0; shift < 256; shift++ {
			var dot int
			for i := 0; i+shift < n; i++ {
				dot += int(a[i+shift] * b[i])
			}
			if math.Abs(float64(dot)) > 5*math.Sqrt(n) {
				t.Fatalf("correlation %d at shift %d", dot, shift)
			}
		}
	}
}
