//go:build amd64 && !purego

package model

import "golang.org/x/sys/cpu"

//go:noescape
func expAffineAVX2(dst, src *float32, n int, a, b float32)

//go:noescape
func expSumAVX2(src *float32, n int, b float32) float64

//go:noescape
func maxAVX2(src *float32, n int) float32

var hasExpAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// The kernels are called directly (not through function variables) so that
// escape analysis keeps callers' stack buffers on the stack.

func expAffineVec(dst, src *float32, n int, a, b float32) bool {
	if hasExpAsm {
		expAffineAVX2(dst, src, n, a, b)
	}
	return hasExpAsm
}

func expSumVec(src *float32, n int, b float32) (float64, bool) {
	if hasExpAsm {
		return expSumAVX2(src, n, b), true
	}
	return 0, false
}

func maxVec(src *float32, n int) (float32, bool) {
	if hasExpAsm {
		return maxAVX2(src, n), true
	}
	return 0, false
}
