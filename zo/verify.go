package zo

import "math"

// Excess measures how far a claimed update misses the projected gradient g
// a verifier re-computed for its sample (docs/PROTOCOL.md §11.3):
//
//	|Dequantize(exp, code) − clip(g, G)| − 2^(exp−128), at least 0,
//
// with clip(g, G) = g clamped to [−G, G] (no clamp when G ≤ 0). An honest
// coder (QuantizeBounded) misses clip(g) by less than one quantisation step
// 2^(exp−128) (stochastic rounding, and the clamp at the bound only rounds
// down), and |clip(a) − clip(b)| ≤ |a − b|, so an honest claim's excess is at
// most the verifier's numerical difference |g − g_producer|: forward passes
// on other BLAS libraries and thread counts. A sign flip of |g| ≥ s misses
// by about 2·min(|g|, G). A NaN or infinite g gives +Inf.
func Excess(exp uint8, code int8, g, bound float64) float64 {
	if math.IsNaN(g) || math.IsInf(g, 0) {
		return math.Inf(1)
	}
	if bound > 0 {
		g = max(-bound, min(bound, g))
	}
	return max(0, math.Abs(Dequantize(exp, code)-g)-Dequantize(exp, 1))
}
