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

// Quantize encodes g into codes (len(codes) == len(g)) with one shared exponent,
// rounding g[i] up with probability equal to its fractional part, against u[i].
func Quantize(g, u []float64, codes []int8) (exp uint8, err error) {
	if len(u) != len(g) || len(codes) != len(g) {
		return 0, fmt.Errorf("zo: quantize: %d gradients, %d uniforms, %d codes", len(g), len(u), len(codes))
	}
	var m float64
	for _, v := range g {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, ErrNonFinite
		}
		m = max(m, math.Abs(v))
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
	for i, v := range g {
		x := math.Ldexp(v, codeBias-e)
		fl := math.Floor(x)
		q := fl
		if u[i] < x-fl {
			q++
		}
		codes[i] = int8(q)
	}
	return uint8(e), nil
}
