package zo

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// forEachKernel runs fn with the dispatched kernels (AVX-512 where the CPU has
// it) and again with the pure-Go ones, so a single test run covers both.
func forEachKernel(t *testing.T, fn func(t *testing.T)) {
	t.Run("dispatched", fn)
	p, s, b := philox16, signAdd, perturbBlock
	philox16, signAdd, perturbBlock = philox16Go, signAddGo, perturbBlockGo
	defer func() { philox16, signAdd, perturbBlock = p, s, b }()
	t.Run("go", fn)
}

func shuffled(rng *rand.Rand, us []Update) []Update {
	out := append([]Update(nil), us...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Removing a machine's updates at random points, interleaved with applies of
// everyone's updates in random orders and batchings, leaves the weights bit
// for bit equal to applying only the other machines' updates.
func TestRemoveIsExact(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	forEachKernel(t, func(t *testing.T) {
		for _, d := range []Dist{Rademacher, Gauss4} {
			t.Run(d.String(), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(99, uint64(d)))
				us := randomUpdates(rng, 160)
				const gone = 2 // the removed machine
				var others []Update
				for _, u := range us {
					if u.Machine != gone {
						others = append(others, u)
					}
				}
				ref := testEngine(t, d, 23)
				ref.Apply(others)
				want := ref.w.Hash()
				for r := 0; r < rounds; r++ {
					e := testEngine(t, d, 23)
					pending := shuffled(rng, us)
					var applied []Update // the removed machine's, applied and not yet removed
					for len(pending) > 0 || len(applied) > 0 {
						if len(applied) > 0 && (len(pending) == 0 || rng.IntN(4) == 0) {
							applied = shuffled(rng, applied)
							n := 1 + rng.IntN(len(applied))
							e.Remove(applied[:n])
							applied = applied[n:]
							continue
						}
						n := 1 + rng.IntN(min(len(pending), 33))
						e.Apply(pending[:n])
						for _, u := range pending[:n] {
							if u.Machine == gone {
								applied = append(applied, u)
							}
						}
						pending = pending[n:]
					}
					if got := e.w.Hash(); got != want {
						t.Fatalf("round %d: hash %x, want %x", r, got, want)
					}
				}
			})
		}
	})
}

// Remove is the exact inverse of Apply on the reference definition too.
func TestRemoveRestoresBase(t *testing.T) {
	for _, d := range []Dist{Rademacher, Gauss4} {
		for _, k := range []int{1, 16, 17} {
			t.Run(fmt.Sprintf("%v/%d", d, k), func(t *testing.T) {
				e := testEngine(t, d, 29)
				base := e.w.Hash()
				us := randomUpdates(rand.New(rand.NewPCG(uint64(k), 3)), k)
				e.Apply(us)
				if e.w.Hash() == base {
					t.Fatal("updates did not change the weights")
				}
				e.Remove(us)
				if e.w.Hash() != base {
					t.Fatal("Remove did not restore the base weights")
				}
			})
		}
	}
}
