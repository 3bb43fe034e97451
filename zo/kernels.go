package zo

import "unsafe"

// The hot loops of the Rademacher path, as swappable kernels: a pure-Go
// reference here, AVX-512 assembly on amd64 CPUs that have it. Both must
// produce identical bits; TestKernelsAgree pins them together.
//
// Philox blocks are computed 16 at a time in structure-of-arrays form:
// in[r][l] is input word r (c0, c1, c2, c3, k0, k1) of lane l, out[w][l] is
// output word w of lane l. A 128-element block's signs for elements 16g..16g+15
// are half (g mod 2) of word g/2 of its lane, i.e. the uint16 at byte offset
// (g/2)·64 + (g mod 2)·2 from the lane's first word.
type (
	philoxIn  = [6][16]uint32
	philoxOut = [4][16]uint32
)

var (
	philox16 = philox16Go
	// signAdd adds Σ_k ±c_k to one block of 128 elements: d[i] += sumC − Σ_k twoC[k]·bit_k(i).
	// Update k's lane sits at masks + (k/16)·256 + (k mod 16)·4 bytes.
	signAdd = signAddGo
	// perturbBlock writes v[i] = float32(q[i] ± eps)·scale for one block, − where the bit is set.
	perturbBlock = perturbBlockGo
)

func philox16Go(in *philoxIn, out *philoxOut) {
	for l := range 16 {
		out[0][l], out[1][l], out[2][l], out[3][l] = philox(in[0][l], in[1][l], in[2][l], in[3][l], in[4][l], in[5][l])
	}
}

// maskBits returns the 16 sign bits of group g (elements 16g..16g+15) of update k.
func maskBits(masks unsafe.Pointer, k, g int) uint16 {
	off := uintptr(k/16*256 + k%16*4 + g/2*64 + g%2*2)
	return *(*uint16)(unsafe.Add(masks, off))
}

func signAddGo(d *[128]int32, masks unsafe.Pointer, twoC *int32, k int, sumC int32) {
	tc := unsafe.Slice(twoC, k)
	for g := range 8 {
		var acc [16]int32
		for i := range acc {
			acc[i] = sumC
		}
		for j := range tc {
			bits := maskBits(masks, j, g)
			for i := range acc {
				acc[i] -= tc[j] & -int32(bits>>i&1)
			}
		}
		for i := range acc {
			d[16*g+i] += acc[i]
		}
	}
}

func perturbBlockGo(q *[128]int32, v *[128]float32, masks unsafe.Pointer, eps int32, scale float32) {
	for g := range 8 {
		bits := maskBits(masks, 0, g)
		for i := range 16 {
			m := -int32(bits >> i & 1)
			v[16*g+i] = float32(q[16*g+i]+(eps^m)-m) * scale
		}
	}
}
