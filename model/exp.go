package model

import "math"

// The exponentials of the forward pass (softmax, the loss's log-sum-exp,
// GELU, SiLU) go through these helpers: AVX2 assembly where the CPU has it
// (exp_amd64.s, ≈ 0.2 ns per element against ≈ 6 for math.Exp), else math.Exp.
// The two agree to a few ulp, not bit for bit; nothing the peers compare
// depends on them (losses are each peer's own, docs/PROTOCOL.md §6).
// expAffine sets dst[i] = e^(a·src[i] + b); dst may be src.
func expAffine(dst, src []float32, a, b float32) {
	dst = dst[:len(src)]
	n := 0
	if len(src) >= 8 && expAffineVec(&dst[0], &src[0], len(src)&^7, a, b) {
		n = len(src) &^ 7
	}
	for i := n; i < len(src); i++ {
		dst[i] = float32(math.Exp(float64(a*src[i] + b)))
	}
}

// expSum is Σ e^(src[i] + b), in float64.
func expSum(src []float32, b float32) float64 {
	var s float64
	n := 0
	if len(src) >= 8 {
		var ok bool
		if s, ok = expSumVec(&src[0], len(src)&^7, b); ok {
			n = len(src) &^ 7
		}
	}
	for _, x := range src[n:] {
		s += math.Exp(float64(x + b))
	}
	return s
}

// maxOf is the largest element of x (len(x) > 0), NaN if any element is NaN.
func maxOf(x []float32) float32 {
	m, n := x[0], 0
	if len(x) >= 8 {
		if v, ok := maxVec(&x[0], len(x)&^7); ok {
			m, n = v, len(x)&^7
		}
	}
	for _, v := range x[n:] {
		m = max(m, v)
	}
	return m
}
