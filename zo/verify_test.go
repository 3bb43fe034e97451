package zo

import (
	"math"
	"math/rand/v2"
	"testing"
)

// An honest coder's claims have zero excess over the gradient they coded,
// and at most δ over a gradient δ away; a sign flip has an excess of about
// twice the clipped gradient.
func TestExcessHonestAndFlipped(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		bound := math.Ldexp(1, r.IntN(6)-2)
		g := make([]float64, 1+r.IntN(64))
		u := make([]float64, len(g))
		for i := range g {
			g[i] = r.NormFloat64() * bound * 4
			u[i] = r.Float64()
		}
		codes := make([]int8, len(g))
		exp, err := QuantizeBounded(g, u, codes, bound)
		if err != nil {
			t.Fatal(err)
		}
		for i := range g {
			if e := Excess(exp, codes[i], g[i], bound); e != 0 {
				t.Fatalf("trial %d: honest claim has excess %g (g %g, code %d, exp %d)", trial, e, g[i], codes[i], exp)
			}
			const noise = 1e-3
			if e := Excess(exp, codes[i], g[i]+noise, bound); e > noise {
				t.Fatalf("trial %d: excess %g over a gradient %g away", trial, e, noise)
			}
			clipped := max(-bound, min(bound, g[i]))
			step := Dequantize(exp, 1)
			if e := Excess(exp, -codes[i], g[i], bound); e < 2*math.Abs(clipped)-2*step-1e-12 {
				t.Fatalf("trial %d: flipped claim's excess %g < 2|clip(g)| − 2 steps = %g", trial, e, 2*math.Abs(clipped)-2*step)
			}
		}
	}
	if !math.IsInf(Excess(127, 1, math.NaN(), 1), 1) {
		t.Error("a NaN recomputation must not pass for a match")
	}
}
