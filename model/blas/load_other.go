//go:build !((linux || darwin) && (amd64 || arm64))

package blas

import (
	"errors"

	gblas "gonum.org/v1/gonum/blas"
)

func loadOpenBLAS([]string) (openBLAS, Backend, error) {
	return openBLAS{}, Backend{}, errors.New("blas: run-time loading of OpenBLAS is not supported on this platform")
}

// callFortran is never reached here: fsgemm stays 0.
func (o openBLAS) callFortran(gblas.Transpose, gblas.Transpose, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int) {
	panic("blas: no OpenBLAS on this platform")
}
