package zo

import (
	"errors"
	"fmt"
	"math"
)

// The one-byte code. A batch of projected gradients shares one exponent byte E;
// each gradient is one signed byte q in [-127, 127] and decodes to
//
//	ĝ = q · 2^(E − 128)
//
// q is g/2^(E−128) stochastically rounded with a uniform u derived from the
// sample's seed, so E[ĝ] = g exactly (up to u's 53-bit resolution). E is the
// smallest exponent for which the batch's largest |g| fits, so every code has
// |ĝ − g| < 2^(E−128) ≤ max|g|/63.5.
const (
	CodeMax  = 127
	codeBias = 128
)

// ErrNonFinite reports a NaN or infinite projected gradient.
var ErrNonFinite = errors.New("zo: projected gradient is not finite")

// Dequantize decodes one code of a batch with exponent byte exp.
func Dequantize(exp uint8, code int8) float64 {
	return math.Ldexp(float64(code), int(exp)-codeBias)
}

// CodeLimit is the largest |q| in [0, CodeMax] such that |q|·2^(exp−128) ≤ bound:
// floor(bound·2^(128−exp)), capped at CodeMax. The scaling by a power of two is
// exact (an overflow to +Inf caps at CodeMax; an underflow only happens below 1,
// where the floor is 0 either way), so every peer computes the same limit. A bound
// that is not positive and finite (G ≤ 0: no bound, as in runs that predate it;
// +Inf; NaN) gives CodeMax.
func CodeLimit(exp uint8, bound float64) int {
	if !(bound > 0) || math.IsInf(bound, 1) {
		return CodeMax
	}
	x := math.Floor(math.Ldexp(bound, codeBias-int(exp)))
	if x >= CodeMax {
		return CodeMax
	}
	return int(x)
}

// Admissible reports whether a code of a batch with exponent byte exp decodes
// within the gradient bound: code ≠ −128 and |code| ≤ CodeLimit(exp, bound).
// A batch is admissible iff every one of its codes is.
func Admissible(exp uint8, code int8, bound float64) bool {
	if code == math.MinInt8 {
		return false
	}
	c := int(code)
	return max(c, -c) <= CodeLimit(exp, bound)
}

// Quantize encodes g into codes (len(codes) == len(g)) with one shared exponent,
// rounding g[i] up with probability equal to its fractional part, against u[i].
// It is QuantizeBounded without a bound.
func Quantize(g, u []float64, codes []int8) (exp uint8, err error) {
	return QuantizeBounded(g, u, codes, 0)
}

// QuantizeBounded is the coder of honest peers under a gradient bound G > 0:
// it clips each g[i] to [−G, G] (clipped SPSA), encodes the clipped values as
// Quantize does (smallest exponent that fits, stochastic rounding against u[i]),
// then clamps each |q| to CodeLimit(E, G), so every code it returns is
// Admissible. The clamp changes a code only when rounding up would step past G
// (|g| within one step of G); for |g| below G − 2^(E−128) the code stays unbiased.
// bound ≤ 0 means no bound: no clipping, no clamp (Quantize). A NaN or infinite
// g is ErrNonFinite whatever the bound.
func QuantizeBounded(g, u []float64, codes []int8, bound float64) (exp uint8, err error) {
	if len(u) != len(g) || len(codes) != len(g) {
		return 0, fmt.Errorf("zo: quantize: %d gradients, %d uniforms, %d codes", len(g), len(u), len(codes))
	}
	bounded := bound > 0 && !math.IsInf(bound, 1)
	clip := func(v float64) float64 {
		if bounded {
			return max(-bound, min(bound, v))
		}
		return v
	}
	var m float64
	for _, v := range g {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, ErrNonFinite
		}
		m = max(m, math.Abs(clip(v)))
	}
	if m == 0 {
		clear(codes)
		return 0, nil
	}
	f, x := math.Frexp(m) // m = f·2^x, f in [0.5, 1)
	e := x - 7 + codeBias // m/2^(e−bias) = 128f in [64, 128)
	if 128*f > CodeMax {
		e++
	}
	switch {
	case e > math.MaxUint8:
		return 0, fmt.Errorf("zo: quantize: |g| = %g is beyond the code's range", m)
	case e < 0:
		e = 0 // finest step; tiny gradients still round without bias
	}
	limit := float64(CodeLimit(uint8(e), bound))
	for i, v := range g {
		x := math.Ldexp(clip(v), codeBias-e)
		fl := math.Floor(x)
		q := fl
		if u[i] < x-fl {
			q++
		}
		codes[i] = int8(max(-limit, min(limit, q)))
	}
	return uint8(e), nil
}
