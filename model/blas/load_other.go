//go:build !((linux || darwin) && (amd64 || arm64))

package blas

import "errors"

func loadOpenBLAS([]string) (openBLAS, Backend, error) {
	return openBLAS{}, Backend{}, errors.New("blas: run-time loading of OpenBLAS is not supported on this platform")
}
