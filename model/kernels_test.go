package model

import (
	"math"
	"testing"
)

func TestExp(t *testing.T) {
	for x := -745.0; x < 710; x += 0.0137 {
		want, got := math.Exp(x), exp(x)
		if math.Abs(got-want) > 1e-12*want {
			t.Fatalf("exp(%v) = %v, want %v", x, got, want)
		}
	}
	if exp(-800) != 0 || !math.IsInf(exp(800), 1) || !math.IsNaN(exp(math.NaN())) {
		t.Error("exp limits")
	}
}
