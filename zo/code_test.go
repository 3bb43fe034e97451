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

// CodeLimit is exact: the limit fits the bound and one more step does not.
func TestCodeLimitExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	bounds := []float64{64, 16, 1, 10, 10.01, 0.3, 1e-30, 1e30, math.Ldexp(1, 500), math.MaxFloat64, math.SmallestNonzeroFloat64}
	for range 300 {
		bounds = append(bounds, math.Ldexp(rng.Float64(), rng.IntN(80)-40))
	}
	for _, g := range bounds {
		for e := 0; e <= math.MaxUint8; e++ {
			l := CodeLimit(uint8(e), g)
			if l < 0 || l > CodeMax {
				t.Fatalf("CodeLimit(%d, %g) = %d", e, g, l)
			}
			if Dequantize(uint8(e), int8(l)) > g {
				t.Fatalf("CodeLimit(%d, %g) = %d decodes to %g, beyond the bound", e, g, l, Dequantize(uint8(e), int8(l)))
			}
			if l < CodeMax && math.Ldexp(float64(l+1), e-codeBias) <= g {
				t.Fatalf("CodeLimit(%d, %g) = %d is not the largest", e, g, l)
			}
			for _, c := range []int{l, -l, l + 1, -l - 1} {
				if c < -CodeMax || c > CodeMax {
					continue
				}
				want := c >= -l && c <= l
				if Admissible(uint8(e), int8(c), g) != want {
					t.Fatalf("Admissible(%d, %d, %g) != %v", e, c, g, want)
				}
			}
		}
	}
	for _, g := range []float64{0, -1, math.Inf(1), math.NaN()} {
		if CodeLimit(255, g) != CodeMax || !Admissible(255, 127, g) || !Admissible(255, -127, g) {
			t.Errorf("bound %v must mean no bound", g)
		}
	}
	for _, g := range []float64{0, 64, math.Inf(1)} {
		if Admissible(128, -128, g) || Admissible(0, -128, g) {
			t.Errorf("bound %v: code −128 must never be admissible", g)
		}
	}
}

// The old extreme (E = 255, ±127 ≈ ±2^134) is not admissible under a sane G;
// a batch exactly at the bound is.
func TestAdmissibleAtTheBound(t *testing.T) {
	const G = 64
	for _, c := range []int8{127, -127, 1, -1} {
		if Admissible(255, c, G) {
			t.Errorf("E=255 code %d admitted under G=%v", c, G)
		}
	}
	// 64 = 64·2^0 (E=128), 127·2^(E−128) > 64 for E ≥ 128 but 64·2^0 == G.
	for _, c := range []struct {
		exp  uint8
		code int8
		ok   bool
	}{{128, 64, true}, {128, -64, true}, {128, 65, false}, {127, 127, true}, {129, 32, true}, {129, 33, false}, {134, 1, true}, {135, 1, false}, {135, 0, true}} {
		if Dequantize(c.exp, c.code) == G && !c.ok {
			t.Fatalf("bad case %+v", c)
		}
		if got := Admissible(c.exp, c.code, G); got != c.ok {
			t.Errorf("Admissible(%d, %d, %v) = %v, want %v", c.exp, c.code, float64(G), got, c.ok)
		}
	}
	// A batch exactly at the bound codes to exactly ±G and is admissible.
	codes := make([]int8, 3)
	exp, err := QuantizeBounded([]float64{G, -G, 1}, []float64{0.99, 0.99, 0.5}, codes, G)
	if err != nil {
		t.Fatal(err)
	}
	if Dequantize(exp, codes[0]) != G || Dequantize(exp, codes[1]) != -G {
		t.Fatalf("exactly ±G coded as %g, %g", Dequantize(exp, codes[0]), Dequantize(exp, codes[1]))
	}
	for _, c := range codes {
		if !Admissible(exp, c, G) {
			t.Fatalf("code %d (E=%d) at the bound is not admissible", c, exp)
		}
	}
}

// Whatever the gradients, QuantizeBounded's output is admissible, within one
// step of the clipped gradient; a non-finite gradient is an error.
func TestQuantizeBoundedAlwaysAdmissible(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 5000; trial++ {
		G := math.Ldexp(0.5+rng.Float64(), rng.IntN(20)-8)
		if trial%7 == 0 {
			G = math.Ldexp(1, rng.IntN(20)-8) // powers of two: codes land exactly on G
		}
		n := 1 + rng.IntN(32)
		scale := math.Ldexp(G, rng.IntN(60)-30) // |g| from ≪ G to ≫ G
		g, u := make([]float64, n), make([]float64, n)
		for i := range g {
			g[i] = scale * rng.NormFloat64()
			switch rng.IntN(20) {
			case 0:
				g[i] = G
			case 1:
				g[i] = -G
			case 2:
				g[i] = math.Ldexp(1, 300) // far beyond the bound, and beyond the code
			case 3:
				g[i] = math.Nextafter(G, math.Inf(1))
			}
			u[i] = rng.Float64()
		}
		codes := make([]int8, n)
		exp, err := QuantizeBounded(g, u, codes, G)
		if err != nil {
			t.Fatal(err)
		}
		step := math.Ldexp(1, int(exp)-codeBias)
		for i, c := range codes {
			if !Admissible(exp, c, G) {
				t.Fatalf("G=%g g=%g: code %d at E=%d is not admissible", G, g[i], c, exp)
			}
			clipped := max(-G, min(G, g[i]))
			if d := math.Abs(Dequantize(exp, c) - clipped); d >= step {
				t.Fatalf("G=%g g=%g: ĝ=%g is %g from the clipped value (step %g)", G, g[i], Dequantize(exp, c), d, step)
			}
		}
	}
	codes := make([]int8, 2)
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := QuantizeBounded([]float64{1, bad}, []float64{0, 0}, codes, 16); err != ErrNonFinite {
			t.Errorf("%v: err %v, want ErrNonFinite", bad, err)
		}
	}
}

// Without a bound QuantizeBounded is Quantize, bit for bit.
func TestQuantizeBoundedZeroIsQuantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for trial := 0; trial < 1000; trial++ {
		n := 1 + rng.IntN(16)
		g, u := make([]float64, n), make([]float64, n)
		for i := range g {
			g[i] = math.Ldexp(rng.NormFloat64(), rng.IntN(200)-100)
			u[i] = rng.Float64()
		}
		a, b := make([]int8, n), make([]int8, n)
		ea, erra := Quantize(g, u, a)
		for _, bound := range []float64{0, -1, math.Inf(1)} {
			eb, errb := QuantizeBounded(g, u, b, bound)
			if ea != eb || (erra == nil) != (errb == nil) || string(int8Bytes(a)) != string(int8Bytes(b)) {
				t.Fatalf("bound %v: Quantize gave E=%d %v, QuantizeBounded E=%d %v", bound, ea, a, eb, b)
			}
		}
	}
}

func int8Bytes(c []int8) []byte {
	b := make([]byte, len(c))
	for i, v := range c {
		b[i] = byte(v)
	}
	return b
}

// Clipping leaves gradients well inside the bound unbiased (the style of
// TestQuantizeUnbiased), while one beyond it averages to the clipped value.
func TestQuantizeBoundedUnbiasedInside(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const G = 4.0
	g := []float64{1.0, 0.3337, -0.0123, 2.5e-3, -0.77, 3.3, -3.9}
	want := append([]float64(nil), g...)
	g = append(g, 1e6) // clipped to G: the batch's exponent is G's
	want = append(want, G)
	const trials = 20000
	sum := make([]float64, len(g))
	u := make([]float64, len(g))
	codes := make([]int8, len(g))
	var step float64
	for k := 0; k < trials; k++ {
		for i := range u {
			u[i] = rng.Float64()
		}
		exp, err := QuantizeBounded(g, u, codes, G)
		if err != nil {
			t.Fatal(err)
		}
		step = math.Ldexp(1, int(exp)-codeBias)
		for i, c := range codes {
			sum[i] += Dequantize(exp, c) - want[i]
		}
	}
	bound := 5 * step / 2 / math.Sqrt(trials)
	for i := range g {
		if bias := sum[i] / trials; math.Abs(bias) > bound {
			t.Errorf("g=%g: mean error %g exceeds %g", g[i], bias, bound)
		}
	}
}
