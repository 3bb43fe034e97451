//go:build !amd64 || purego

package model

const hasExpAsm = false

func expAffineVec(dst, src *float32, n int, a, b float32) bool { return false }
func expSumVec(src *float32, n int, b float32) (float64, bool) { return 0, false }
func maxVec(src *float32, n int) (float32, bool)               { return 0, false }
