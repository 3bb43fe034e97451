package zo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// overflowWeights is small enough for an int64 reference of every element:
// a tensor spanning two chunks (the exact path runs per chunk), one that is
// not a multiple of 128, a frozen one.
func overflowWeights(t testing.TB, rng *rand.Rand) *Weights {
	t.Helper()
	var specs []TensorSpec
	for i, s := range []struct {
		n         int
		scale     float32
		trainable bool
	}{{300, 0.5, true}, {chunkElems + 131, 1, true}, {77, 1, false}, {5, 0.01, true}} {
		data := make([]float32, s.n)
		for j := range data {
			data[j] = s.scale * float32(rng.NormFloat64())
		}
		specs = append(specs, TensorSpec{Name: fmt.Sprintf("t%d", i), Shape: []int{s.n}, Data: data, Trainable: s.trainable})
	}
	w, err := NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func overflowEngine(t testing.TB, d Dist, lr float64, exactOnly bool) *Engine {
	t.Helper()
	e, err := NewEngine(Config{Run: "overflow", Dist: d, Eps: 1e-3, LR: lr}, overflowWeights(t, rand.New(rand.NewPCG(41, 43))))
	if err != nil {
		t.Fatal(err)
	}
	e.exactOnly = exactOnly
	return e
}

// trueValues is the int64 reference: base plus Σ Coeff·zInt per element,
// without any wrapping, and the number of elements outside int32.
func trueValues(e *Engine, base [][]int32, us []Update) (vals [][]int64, outside int) {
	for ti, t := range e.w.Tensors {
		v := make([]int64, len(base[ti]))
		for i, q := range base[ti] {
			v[i] = int64(q)
		}
		z := make([]int32, t.Len())
		for _, u := range us {
			c := int64(e.Coeff(u, DeriveSeed(e.cfg.Run, u.Machine, u.Sample), ti))
			if c == 0 {
				continue
			}
			e.cfg.Dist.Fill(e.cfg.PerturbSeedOf(u), t.Offset, z)
			for i := range z {
				v[i] += c * int64(z[i])
			}
		}
		for _, x := range v {
			if x != int64(int32(x)) {
				outside++
			}
		}
		vals = append(vals, v)
	}
	return vals, outside
}

// checkAgainstReference: Q is the true value wrapped, Overflow counts the
// elements outside int32, and the cached bound covers every |Q|.
func checkAgainstReference(t *testing.T, e *Engine, vals [][]int64, outside int) {
	t.Helper()
	if _, got := e.w.Overflow(); got != outside {
		t.Fatalf("Overflow reports %d elements, the reference %d", got, outside)
	}
	for ti, tn := range e.w.Tensors {
		for i, q := range tn.Q {
			if q != int32(vals[ti][i]) {
				t.Fatalf("tensor %d element %d: Q %d, true value %d wraps to %d", ti, i, q, vals[ti][i], int32(vals[ti][i]))
			}
			if k := (vals[ti][i] - int64(q)) >> 32; tn.wraps[i] != k {
				t.Fatalf("tensor %d element %d: wrap count %d, want %d", ti, i, tn.wraps[i], k)
			}
			if absQ(q) > tn.qmax {
				t.Fatalf("tensor %d element %d: |Q| = %d above the bound %d", ti, i, absQ(q), tn.qmax)
			}
		}
	}
}

// adversarial returns n updates of one machine whose every coefficient pushes
// element j of tensor ti the same way (the code's sign follows −z there), with
// ĝ large enough that the coefficient clamps.
func adversarial(e *Engine, machine, from uint64, ti, j, n int, exp uint8) []Update {
	t := e.w.Tensors[ti]
	z := make([]int32, 1)
	var us []Update
	for s := from; s < from+uint64(n); s++ {
		e.cfg.Dist.Fill(e.cfg.PerturbSeed(machine, s), t.Offset+uint64(j), z)
		code := int8(-CodeMax)
		if z[0] < 0 {
			code = CodeMax
		}
		us = append(us, Update{Machine: machine, Sample: s, Exp: exp, Code: code})
	}
	return us
}

// honest returns n admissible updates of random codes under bound G from a few machines.
func honest(rng *rand.Rand, n int, G float64) []Update {
	us := make([]Update, n)
	for i := range us {
		exp := uint8(120 + rng.IntN(12))
		l := CodeLimit(exp, G)
		us[i] = Update{Machine: uint64(rng.IntN(4)), Sample: uint64(1000 + i), Exp: exp, Code: int8(rng.IntN(2*l+1) - l)}
	}
	return us
}

func applyInBatches(rng *rand.Rand, us []Update, maxBatch int, f func([]Update)) {
	us = shuffled(rng, us)
	for len(us) > 0 {
		n := 1 + rng.IntN(min(len(us), maxBatch))
		f(us[:n])
		us = us[n:]
	}
}

// An adversarial set that pushes elements past 2^31 is detected identically
// whatever the order and batching, on the fast-and-slow and the exact-only
// engines and both kernel sets; removing the attacker's updates brings the
// count back to zero and the weights to the replay of the rest, and at every
// step Q, the wrap counts and the verdict match the int64 reference.
func TestOverflowDetectedAndUndone(t *testing.T) {
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	forEachKernel(t, func(t *testing.T) {
		for _, d := range []Dist{Rademacher, Gauss4} {
			t.Run(d.String(), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(51, uint64(d)))
				ref := overflowEngine(t, d, 1e-2, false)
				base := cloneQ(ref.w)
				good := honest(rng, 60, 16)
				n := 40 // rademacher: ~2^26 per update, 40·2^26 = 2.5·2^31
				if d == Gauss4 {
					n = 6 // each update moves the target by 2^26·|zInt|, up to 2^26·510
				}
				// Two targets: one in the two-chunk tensor, one in the small one.
				bad := append(adversarial(ref, 7, 0, 1, 5000, n, 200), adversarial(ref, 7, uint64(n), 0, 3, n, 200)...)
				all := append(append([]Update(nil), good...), bad...)
				vals, outside := trueValues(ref, base, all)
				if outside == 0 {
					t.Fatal("the adversarial set does not overflow: the test is vacuous")
				}
				ref.Apply(good)
				wantGood := ref.w.Hash()
				var verdictHash [32]byte
				for r := 0; r < rounds; r++ {
					for _, exact := range []bool{false, true} {
						e := overflowEngine(t, d, 1e-2, exact)
						applyInBatches(rng, all, 17, e.Apply)
						checkAgainstReference(t, e, vals, outside)
						h := e.w.Hash()
						if r == 0 && !exact {
							verdictHash = h
						} else if h != verdictHash {
							t.Fatalf("round %d exact=%v: overflowed weights hash differs between orders", r, exact)
						}
						// Remove the attacker's updates in random batches; check each state.
						left := shuffled(rng, bad)
						for len(left) > 0 {
							k := 1 + rng.IntN(min(len(left), 5))
							e.Remove(left[:k])
							left = left[k:]
							v, o := trueValues(e, base, append(append([]Update(nil), good...), left...))
							checkAgainstReference(t, e, v, o)
							if o == 0 {
								// Never-overflowed replay of the same set.
								f := overflowEngine(t, d, 1e-2, false)
								f.Apply(append(append([]Update(nil), good...), left...))
								if f.w.Hash() != e.w.Hash() {
									t.Fatalf("round %d: after removals the weights differ from a replay of the remaining set", r)
								}
							}
						}
						if _, el := e.w.Overflow(); el != 0 || e.w.Hash() != wantGood {
							t.Fatalf("round %d exact=%v: after removing the attacker: %d elements overflow, hash equal %v", r, exact, el, e.w.Hash() == wantGood)
						}
					}
				}
			})
		}
	})
}

// Random admissible sets under a realistic bound and learning rate never
// overflow, take only the fast path, and match the exact path bit for bit.
func TestAdmissibleSetsStayFast(t *testing.T) {
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for _, d := range []Dist{Rademacher, Gauss4} {
		for r := 0; r < rounds; r++ {
			rng := rand.New(rand.NewPCG(61, uint64(r)))
			us := honest(rng, 300, 16)
			fast := overflowEngine(t, d, 3e-4, false)
			exact := overflowEngine(t, d, 3e-4, true)
			applyInBatches(rng, us, 40, fast.Apply)
			applyInBatches(rng, us, 40, exact.Apply)
			if fast.exactRuns != 0 {
				t.Fatalf("%v round %d: %d tensor applies left the fast path", d, r, fast.exactRuns)
			}
			if exact.exactRuns == 0 {
				t.Fatal("exactOnly did not take the exact path")
			}
			if _, el := fast.w.Overflow(); el != 0 {
				t.Fatalf("%v round %d: %d elements overflow", d, r, el)
			}
			if fast.w.Hash() != exact.w.Hash() {
				t.Fatalf("%v round %d: fast and exact paths differ", d, r)
			}
		}
	}
}

// The bound is what lets the fast path skip checks; it must follow Q through
// applies, rescans and SyncViews after Q is overwritten (checkpoint restore).
func TestBoundAfterOverwrite(t *testing.T) {
	for _, d := range []Dist{Rademacher, Gauss4} {
		e := overflowEngine(t, d, 1e-2, false)
		tn := e.w.Tensors[0]
		// A "restored checkpoint": element 3 one small step below the limit.
		tn.Q[3] = math.MaxInt32 - 1000
		e.w.SyncViews()
		if tn.qmax != math.MaxInt32-1000 {
			t.Fatalf("SyncViews left the bound at %d", tn.qmax)
		}
		base := cloneQ(e.w)
		us := adversarial(e, 9, 0, 0, 3, 1, 200)
		vals, outside := trueValues(e, base, us)
		if outside == 0 {
			t.Fatal("vacuous")
		}
		e.Apply(us)
		checkAgainstReference(t, e, vals, outside)
		e.Remove(us)
		vals, outside = trueValues(e, base, nil)
		checkAgainstReference(t, e, vals, outside)
	}
}
