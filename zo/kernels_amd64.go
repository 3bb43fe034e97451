//go:build amd64 && !purego

package zo

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func philox16AVX512(in *philoxIn, out *philoxOut)

//go:noescape
func signAddAVX512(d *[128]int32, masks unsafe.Pointer, twoC *int32, k int, sumC int32)

//go:noescape
func perturbBlockAVX512(q *[128]int32, v *[128]float32, masks unsafe.Pointer, eps int32, scale float32)

func init() {
	if cpu.X86.HasAVX512F {
		philox16, signAdd, perturbBlock = philox16AVX512, signAddAVX512, perturbBlockAVX512
	}
}
