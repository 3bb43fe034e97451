package zo

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func poolEngine(t testing.TB, d Dist, lr float64, pool uint32, exactOnly bool) *Engine {
	t.Helper()
	e, err := NewEngine(Config{Run: "overflow", Dist: d, Eps: 1e-3, LR: lr, Pool: pool}, overflowWeights(t, rand.New(rand.NewPCG(41, 43))))
	if err != nil {
		t.Fatal(err)
	}
	e.exactOnly = exactOnly
	return e
}

// Pool mode: whatever the order and batching (Apply, or PoolSums accumulated
// across calls and applied once), on both kernel sets and both paths, the
// weights equal the per-update definition (base + Σ Coeff(own seed)·zInt(pool
// seed), in int64, wrapped) bit for bit, and so does the overflow verdict.
func TestPoolApplyMatchesReplay(t *testing.T) {
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	forEachKernel(t, func(t *testing.T) {
		for _, d := range []Dist{Rademacher, Gauss4} {
			for _, k := range []uint32{1, 3, 16, 256} {
				t.Run(fmt.Sprintf("%v/K=%d", d, k), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(k), uint64(d)))
					ref := poolEngine(t, d, 1e-2, k, false)
					base := cloneQ(ref.w)
					for r := 0; r < rounds; r++ {
						us := honest(rng, 150+rng.IntN(150), 16)
						vals, outside := trueValues(ref, base, us)
						for _, exact := range []bool{false, true} {
							one := poolEngine(t, d, 1e-2, k, exact)
							for _, u := range shuffled(rng, us) {
								one.Apply([]Update{u})
							}
							checkAgainstReference(t, one, vals, outside)

							batched := poolEngine(t, d, 1e-2, k, exact)
							applyInBatches(rng, us, 60, batched.Apply)
							checkAgainstReference(t, batched, vals, outside)

							summed := poolEngine(t, d, 1e-2, k, exact)
							ps := summed.NewPoolSums()
							applyInBatches(rng, us, 700, ps.Add)
							if ps.Len() != uint64(len(us)) {
								t.Fatalf("sums hold %d updates, want %d", ps.Len(), len(us))
							}
							summed.ApplySums(ps)
							checkAgainstReference(t, summed, vals, outside)
							if ps.Len() != 0 || len(ps.sums) != 0 {
								t.Fatal("ApplySums left the sums non-empty")
							}
						}
					}
				})
			}
		}
	})
}

// An attack that overflows in pool mode is detected exactly as the
// per-update definition says, and removing it (Remove sums coefficients per
// pool seed too) restores the honest weights bit for bit. With one pool seed
// the attacker's coefficients add up on the same z, so the sums leave int32:
// the exact path must take them in full.
func TestPoolOverflowDetectedAndUndone(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		for _, d := range []Dist{Rademacher, Gauss4} {
			for _, k := range []uint32{1, 5} {
				t.Run(fmt.Sprintf("%v/K=%d", d, k), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(71, uint64(k)))
					ref := poolEngine(t, d, 1e-2, k, false)
					base := cloneQ(ref.w)
					good := honest(rng, 60, 16)
					n := 60
					if d == Gauss4 {
						n = 8
					}
					bad := adversarial(ref, 7, 0, 1, 5000, n, 200)
					all := append(append([]Update(nil), good...), bad...)
					vals, outside := trueValues(ref, base, all)
					if outside == 0 {
						t.Fatal("the adversarial set does not overflow: the test is vacuous")
					}
					ref.Apply(good)
					for _, exact := range []bool{false, true} {
						// One batch, as catch-up does: the attacker's sums on a seed leave int32.
						once := poolEngine(t, d, 1e-2, k, exact)
						once.Apply(shuffled(rng, all))
						checkAgainstReference(t, once, vals, outside)
						once.Remove(bad)
						if once.w.Hash() != ref.w.Hash() {
							t.Fatalf("exact=%v: removing the attacker in one batch leaves other weights", exact)
						}

						e := poolEngine(t, d, 1e-2, k, exact)
						applyInBatches(rng, all, 40, e.Apply)
						checkAgainstReference(t, e, vals, outside)
						applyInBatches(rng, bad, 9, e.Remove)
						v, o := trueValues(e, base, good)
						checkAgainstReference(t, e, v, o)
						if e.w.Hash() != ref.w.Hash() {
							t.Fatalf("exact=%v: after removing the attacker the weights differ from the honest set's", exact)
						}
					}
				})
			}
		}
	})
}

// The pool rule is a function of the update: PerturbSeed is the pool seed
// PoolIndex names, indices spread over the whole pool, and full mode keeps
// each update's own seed.
func TestPoolIndexRule(t *testing.T) {
	const k = 64
	c := Config{Run: "r", Pool: k}
	seen := make(map[uint32]int)
	for s := range uint64(4096) {
		i := PoolIndex("r", 3, s, k)
		if i >= k {
			t.Fatalf("index %d outside a pool of %d", i, k)
		}
		seen[i]++
		if c.PerturbSeed(3, s) != PoolSeed("r", i) {
			t.Fatal("PerturbSeed is not the pool seed of PoolIndex")
		}
	}
	for i := range uint32(k) {
		if n := seen[i]; n < 64-40 || n > 64+40 { // 4096/64 = 64 expected, σ ≈ 8
			t.Fatalf("pool seed %d drawn %d times of 4096", i, n)
		}
	}
	if (Config{Run: "r"}).PerturbSeed(3, 9) != DeriveSeed("r", 3, 9) {
		t.Fatal("full mode must perturb along the update's own seed")
	}
	if PoolSeed("r", 1) == PoolSeed("r", 2) || PoolSeed("r", 1) == PoolSeed("s", 1) {
		t.Fatal("pool seeds collide")
	}
	if err := (Config{Run: "r", Dist: Rademacher, Eps: 1, Pool: MaxPool + 1}).Validate(); err == nil {
		t.Fatal("a pool above MaxPool validated")
	}
}

// A pool and a non-MeZO estimator have not been specified together: such a
// configuration is refused rather than given an unspecified meaning.
func TestPoolWithEstimatorRefused(t *testing.T) {
	c := Config{Run: "r", Dist: Rademacher, Eps: 1e-3, LR: 1e-4, Pool: 16}
	if err := c.Validate(); err != nil {
		t.Fatalf("pool alone: %v", err)
	}
	c.Estimator = Estimator{Parts: 2}
	if err := c.Validate(); err == nil {
		t.Fatal("a pool with parts=2 was accepted")
	}
	c.Pool = 0
	if err := c.Validate(); err != nil {
		t.Fatalf("parts=2 alone: %v", err)
	}
}
