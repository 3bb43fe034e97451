package zo

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func proEngine(t testing.TB, d Dist, pool, m uint32, exactOnly bool) *Engine {
	t.Helper()
	e, err := NewEngine(Config{Run: "overflow", Dist: d, Eps: 1e-3, LR: 1e-2, Pool: pool, PoolChoices: m}, overflowWeights(t, rand.New(rand.NewPCG(41, 43))))
	if err != nil {
		t.Fatal(err)
	}
	e.exactOnly = exactOnly
	return e
}

// slotted gives honest updates random slots below m.
func slotted(rng *rand.Rand, us []Update, m uint32) []Update {
	for i := range us {
		us[i].Slotted, us[i].Slot = true, uint8(rng.IntN(int(m)))
	}
	return us
}

// FedKSeed-Pro: weights after a random set of slotted updates, in random
// orders and batchings (one by one, batched Apply, PoolSums across calls),
// on both kernel sets and both paths, equal the per-update definition
// (base + Σ Coeff(own seed)·zInt(pool seed of the carried slot), in int64,
// wrapped) bit for bit; removing a random part leaves exactly the rest.
func TestProApplyMatchesReplay(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		for _, d := range []Dist{Rademacher, Gauss4} {
			for _, c := range []struct{ k, m uint32 }{{3, 2}, {16, 4}, {256, 256}} {
				t.Run(fmt.Sprintf("%v/K=%d/m=%d", d, c.k, c.m), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(c.k), uint64(c.m)))
					ref := proEngine(t, d, c.k, c.m, false)
					base := cloneQ(ref.w)
					us := slotted(rng, honest(rng, 150+rng.IntN(150), 16), c.m)
					vals, outside := trueValues(ref, base, us)
					for _, exact := range []bool{false, true} {
						one := proEngine(t, d, c.k, c.m, exact)
						for _, u := range shuffled(rng, us) {
							one.Apply([]Update{u})
						}
						checkAgainstReference(t, one, vals, outside)

						batched := proEngine(t, d, c.k, c.m, exact)
						applyInBatches(rng, us, 60, batched.Apply)
						checkAgainstReference(t, batched, vals, outside)

						summed := proEngine(t, d, c.k, c.m, exact)
						ps := summed.NewPoolSums()
						applyInBatches(rng, us, 700, ps.Add)
						summed.ApplySums(ps)
						checkAgainstReference(t, summed, vals, outside)

						// Remove a random half: the rest's weights, exactly.
						mixed := shuffled(rng, us)
						gone, kept := mixed[:len(mixed)/2], mixed[len(mixed)/2:]
						applyInBatches(rng, gone, 40, summed.Remove)
						v, o := trueValues(ref, base, kept)
						checkAgainstReference(t, summed, v, o)
					}
					// The slot matters: the same updates at slot 0 give other weights.
					moved := make([]Update, len(us))
					for i, u := range us {
						u.Slot = 0
						moved[i] = u
					}
					other := proEngine(t, d, c.k, c.m, false)
					other.Apply(moved)
					one := proEngine(t, d, c.k, c.m, false)
					one.Apply(us)
					if other.w.Hash() == one.w.Hash() {
						t.Fatal("the carried slots changed nothing")
					}
				})
			}
		}
	})
}

// Slot j of an update is pool seed (PoolIndex + j) mod K: slot 0 is the
// uniform rule's seed, a window of m = K slots is the whole pool, and an
// unslotted update in a run without choices keeps §12's seed.
func TestProCandidates(t *testing.T) {
	const k = 64
	for s := range uint64(200) {
		k0 := PoolIndex("r", 3, s, k)
		seen := map[uint32]bool{}
		for j := range k {
			c := PoolCandidate("r", 3, s, k, uint8(j))
			if c != (k0+uint32(j))%k {
				t.Fatalf("sample %d slot %d: candidate %d, want %d", s, j, c, (k0+uint32(j))%k)
			}
			seen[c] = true
			cfg := Config{Run: "r", Pool: k, PoolChoices: k}
			if cfg.PerturbSeedOf(Update{Machine: 3, Sample: s, Slotted: true, Slot: uint8(j)}) != PoolSeed("r", c) {
				t.Fatal("PerturbSeedOf is not the candidate's pool seed")
			}
		}
		if len(seen) != k {
			t.Fatalf("m = K covers %d of %d seeds", len(seen), k)
		}
		if (Config{Run: "r", Pool: k}).PerturbSeedOf(Update{Machine: 3, Sample: s, Slot: 5}) != PoolSeed("r", k0) {
			t.Fatal("a run without choices must ignore a slot")
		}
	}
	for _, c := range []struct {
		pool, m uint32
		ok      bool
	}{{16, 2, true}, {16, 16, true}, {1024, 256, true}, {16, 1, false}, {16, 17, false}, {1024, 257, false}, {0, 4, false}} {
		err := Config{Run: "r", Dist: Rademacher, Eps: 1, Pool: c.pool, PoolChoices: c.m}.Validate()
		if (err == nil) != c.ok {
			t.Errorf("pool %d, m %d: Validate = %v", c.pool, c.m, err)
		}
	}
}

// A slotted update's digest term is v2 (slot included); an unslotted one's
// is v1 as before, so every existing digest stays.
func TestProUpdateHash(t *testing.T) {
	u := Update{Machine: 1, Sample: 2, Exp: 128, Code: -127}
	v := u
	v.Slotted = true
	w := v
	w.Slot = 1
	if UpdateHash(u) == UpdateHash(v) || UpdateHash(v) == UpdateHash(w) {
		t.Fatal("the slot does not enter the digest term")
	}
}

// The rules: slots exactly in FedKSeed-Pro runs, each below m.
func TestProRules(t *testing.T) {
	pro := Rules{PoolChoices: 4}
	if err := pro.CheckSlots(0, []uint8{0, 3, 1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r     Rules
		slots []uint8
	}{{pro, nil}, {pro, []uint8{0, 4}}, {Rules{}, []uint8{0}}} {
		if err := c.r.CheckSlots(7, c.slots); !errors.Is(err, ErrPool) {
			t.Errorf("m %d, slots %v: %v, want ErrPool", c.r.PoolChoices, c.slots, err)
		}
	}
	if err := pro.Check(Update{Exp: 120}); !errors.Is(err, ErrPool) {
		t.Fatalf("an unslotted update in a Pro run: %v", err)
	}
	if err := (Rules{}).Check(Update{Exp: 120, Slotted: true}); !errors.Is(err, ErrPool) {
		t.Fatalf("a slotted update in a uniform run: %v", err)
	}
}

// ChooseSlot is FedKSeed-Pro's draw: reproducible, uniform before any
// update, and favouring the seed with the largest mean |ĝ| by exp(1) to 1
// once the figures differ. With K = m = 4 and seed 2 the only one at the
// top, p(seed 2) = e/(e+3) ≈ 0.475, the others 0.175 each.
func TestProChooseSlot(t *testing.T) {
	e := proEngine(t, Rademacher, 4, 4, false)
	const n = 8000
	count := func() [4]int {
		var c [4]int
		for s := range uint64(n) {
			j := e.ChooseSlot(9, s)
			if j2 := e.ChooseSlot(9, s); j2 != j {
				t.Fatal("ChooseSlot is not reproducible")
			}
			c[PoolCandidate("overflow", 9, s, 4, j)]++
		}
		return c
	}
	for k, c := range count() {
		if math.Abs(float64(c)/n-0.25) > 0.025 {
			t.Fatalf("before any update seed %d drawn %d of %d", k, c, n)
		}
	}
	// One update per seed: seed 2's |ĝ| large, the others small.
	var us []Update
	for s := uint64(0); len(us) < 4; s++ {
		for j := range uint8(4) {
			if k := PoolCandidate("overflow", 1, s, 4, j); int(k) == len(us) {
				code := int8(1)
				if k == 2 {
					code = 100
				}
				us = append(us, Update{Machine: 1, Sample: s, Exp: 120, Code: code, Slotted: true, Slot: j})
				break
			}
		}
	}
	e.Apply(us)
	for k := range uint32(4) {
		if n, _ := e.ProSeedStats(k); n != 1 {
			t.Fatalf("seed %d: %d updates observed, want 1", k, n)
		}
	}
	c := count()
	want := [4]float64{1, 1, math.E, 1}
	for k := range c {
		p := want[k] / (math.E + 3)
		if math.Abs(float64(c[k])/n-p) > 0.025 {
			t.Fatalf("seed %d drawn %.3f of the time, want %.3f", k, float64(c[k])/n, p)
		}
	}
	// Removing the updates forgets them: uniform again.
	e.Remove(us)
	for k, c := range count() {
		if math.Abs(float64(c)/n-0.25) > 0.025 {
			t.Fatalf("after removal seed %d drawn %d of %d", k, c, n)
		}
	}
}

// A FedKSeed-Pro run's golden hash: slots chosen by ChooseSlot, steps along
// the chosen seeds, batched applies. Recorded on amd64 (dispatched kernels);
// the pure-Go kernels (forEachKernel here, and -tags purego in CI) must
// agree. A change here is a protocol change.
func TestGoldenPro(t *testing.T) {
	want := map[Dist]string{
		Rademacher: "e37d245752e8e879d06dff4222d2ac2664925fccbfefcc50ea3b0ea0ec54bcb0",
		Gauss4:     "fb8932be1d986a9e1c684982baeb089d89671c296d75c36d6288f6539ea903c1",
	}
	forEachKernel(t, func(t *testing.T) {
		for d, h := range want {
			got := goldenScenarioCfg(t, Config{Run: "golden", Dist: d, Eps: 1e-3, LR: 1e-3, Pool: 32, PoolChoices: 8})
			if got != h {
				t.Errorf("%v: weights hash %s, want %s", d, got, h)
			}
		}
	})
}
