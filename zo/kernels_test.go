package zo

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The dispatched kernels (assembly where the CPU has it) must match the
// pure-Go ones bit for bit. NaN guard bands around the outputs catch writes
// out of bounds.
func TestKernelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(77, 1))
	for trial := 0; trial < 200; trial++ {
		var in philoxIn
		for r := range in {
			for l := range in[r] {
				in[r][l] = rng.Uint32()
			}
		}
		var a, b philoxOut
		philox16(&in, &a)
		philox16Go(&in, &b)
		if a != b {
			t.Fatalf("philox16 differs from the Go kernel on %v", in)
		}

		k := 1 + rng.IntN(40)
		outs := make([]philoxOut, (k+15)/16+1)
		for ch := range outs {
			for w := range outs[ch] {
				for l := range outs[ch][w] {
					outs[ch][w][l] = rng.Uint32()
				}
			}
		}
		twoC := make([]int32, k)
		var sumC int32
		for j := range twoC {
			c := rng.Int32N(1<<20) - 1<<19
			twoC[j], sumC = 2*c, sumC+c
		}
		lane := 0
		if k == 1 {
			lane = rng.IntN(16)
		}
		var d1, d2 [130]int32 // one guard element on each side
		for i := range d1 {
			d1[i] = rng.Int32()
			d2[i] = d1[i]
		}
		signAdd((*[128]int32)(d1[1:]), lanePtr(&outs[0], lane), &twoC[0], k, sumC)
		signAddGo((*[128]int32)(d2[1:]), lanePtr(&outs[0], lane), &twoC[0], k, sumC)
		if d1 != d2 {
			t.Fatalf("signAdd (k=%d lane=%d) differs from the Go kernel", k, lane)
		}

		var q [128]int32
		for i := range q {
			q[i] = rng.Int32N(1<<29) - 1<<28
		}
		eps := rng.Int32N(maxEps) + 1
		scale := float32(math.Ldexp(1, -rng.IntN(40)))
		var v1, v2 [130]float32
		nan := float32(math.NaN())
		v1[0], v1[129], v2[0], v2[129] = nan, nan, nan, nan
		perturbBlock(&q, (*[128]float32)(v1[1:]), lanePtr(&outs[0], lane), eps, scale)
		perturbBlockGo(&q, (*[128]float32)(v2[1:]), lanePtr(&outs[0], lane), eps, scale)
		for i := range v1 {
			if math.Float32bits(v1[i]) != math.Float32bits(v2[i]) {
				t.Fatalf("perturbBlock differs at %d: %v vs %v", i, v1[i], v2[i])
			}
		}
		if v1[0] == v1[0] || v1[129] == v1[129] {
			t.Fatal("perturbBlock wrote outside its block")
		}
	}
}
