package zo

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// testWeights builds weights with awkward sizes: lengths that are not multiples
// of 8, 128 or the chunk size, tensors spanning several chunks, a frozen tensor
// and an all-zero one.
func testWeights(t testing.TB, rng *rand.Rand) *Weights {
	t.Helper()
	shapes := []struct {
		shape     []int
		scale     float32
		trainable bool
	}{
		{[]int{3, 7}, 0.5, true},
		{[]int{chunkElems + 131}, 0.02, true},
		{[]int{5}, 0, true},
		{[]int{64, 64}, 1, false},
		{[]int{2*chunkElems + 1000}, 3, true},
		{[]int{1}, 0.001, true},
	}
	var specs []TensorSpec
	for i, s := range shapes {
		n := 1
		for _, d := range s.shape {
			n *= d
		}
		data := make([]float32, n)
		for j := range data {
			data[j] = s.scale * float32(rng.NormFloat64())
		}
		specs = append(specs, TensorSpec{Name: fmt.Sprintf("t%d", i), Shape: s.shape, Data: data, Trainable: s.trainable})
	}
	w, err := NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func cloneQ(w *Weights) [][]int32 {
	out := make([][]int32, len(w.Tensors))
	for i, t := range w.Tensors {
		out[i] = append([]int32(nil), t.Q...)
	}
	return out
}

func randomUpdates(rng *rand.Rand, n int) []Update {
	us := make([]Update, n)
	for i := range us {
		us[i] = Update{Machine: uint64(rng.IntN(5)), Sample: uint64(i), Exp: uint8(118 + rng.IntN(10)), Code: int8(rng.IntN(255) - 127)}
	}
	return us
}

func testEngine(t testing.TB, d Dist, seed uint64) *Engine {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	e, err := NewEngine(Config{Run: "test-run", Dist: d, Eps: 1e-3, LR: 1e-2}, testWeights(t, rng))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The fused kernels must agree element for element with the definition:
// Q += Coeff·zInt, one update at a time, z from Dist.Fill.
func TestApplyMatchesReference(t *testing.T) {
	for _, d := range []Dist{Rademacher, Gauss4} {
		for _, k := range []int{1, 2, 7, 8, 9, 16, 33, 64} {
			t.Run(fmt.Sprintf("%v/%d", d, k), func(t *testing.T) {
				e := testEngine(t, d, 1)
				us := randomUpdates(rand.New(rand.NewPCG(uint64(k), 2)), k)
				want := cloneQ(e.w)
				for ti, tn := range e.w.Tensors {
					z := make([]int32, tn.Len())
					for _, u := range us {
						s := DeriveSeed(e.cfg.Run, u.Machine, u.Sample)
						c := e.Coeff(u, s, ti)
						d.Fill(s, tn.Offset, z)
						for i := range z {
							want[ti][i] += c * z[i]
						}
					}
				}
				e.Apply(us)
				for ti, tn := range e.w.Tensors {
					for i, q := range tn.Q {
						if q != want[ti][i] {
							t.Fatalf("tensor %d element %d: fused %d, reference %d", ti, i, q, want[ti][i])
						}
					}
				}
			})
		}
	}
}

// The weights are a function of the set of updates: any order, any split into
// late batches, gives the same hash.
func TestApplyOrderIndependence(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 6
	}
	for _, d := range []Dist{Rademacher, Gauss4} {
		rng := rand.New(rand.NewPCG(42, uint64(d)))
		us := randomUpdates(rng, 150)
		ref := testEngine(t, d, 7)
		ref.Apply(us)
		want := ref.w.Hash()
		base := testEngine(t, d, 7).w.Hash()
		if want == base {
			t.Fatal("updates did not change the weights")
		}
		for r := 0; r < rounds; r++ {
			e := testEngine(t, d, 7)
			perm := append([]Update(nil), us...)
			rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			for len(perm) > 0 { // late batches of random sizes, including single updates
				n := 1 + rng.IntN(min(len(perm), 40))
				e.Apply(perm[:n])
				perm = perm[n:]
			}
			if got := e.w.Hash(); got != want {
				t.Fatalf("%v round %d: hash %x, want %x", d, r, got, want)
			}
		}
	}
}

type quadLoss struct {
	w      *Weights
	target []float64 // per element of every tensor, flattened
	evals  int
}

// Loss is ½·mean((θ−target)²) over the views; a stand-in for a forward pass.
func (q *quadLoss) Loss() (float64, error) {
	q.evals++
	var s float64
	k, n := 0, 0
	for _, t := range q.w.Tensors {
		for _, v := range t.View {
			d := float64(v) - q.target[k]
			s += float64(d * d) // no FMA: the golden hash must match on every platform
			k++
			n++
		}
	}
	return s / float64(2*n), nil
}

// newQuadLoss puts the optimum at distance ≈ spread per element from the start.
func newQuadLoss(w *Weights, rng *rand.Rand, spread float64) *quadLoss {
	q := &quadLoss{w: w}
	for _, t := range w.Tensors {
		for _, v := range t.View {
			q.target = append(q.target, float64(v)+spread*rng.NormFloat64())
		}
	}
	return q
}

func viewsEqual(a, b [][]float32) bool {
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return true
}

func cloneViews(w *Weights) [][]float32 {
	out := make([][]float32, len(w.Tensors))
	for i, t := range w.Tensors {
		out[i] = append([]float32(nil), t.View...)
	}
	return out
}

// A step evaluates two perturbed views and leaves no residue: the canonical
// weights are untouched and the views come back bit for bit.
func TestStepLeavesNoResidue(t *testing.T) {
	for _, d := range []Dist{Rademacher, Gauss4} {
		e := testEngine(t, d, 3)
		loss := newQuadLoss(e.w, rand.New(rand.NewPCG(3, 3)), 0.01)
		q0, v0, h0 := cloneQ(e.w), cloneViews(e.w), e.w.Hash()
		for i := 0; i < 5; i++ {
			r, err := e.Step(loss, DeriveSeed("test-run", 9, uint64(i)))
			if err != nil {
				t.Fatal(err)
			}
			if r.LossPlus == r.LossMinus {
				t.Fatalf("%v: perturbation had no effect on the loss", d)
			}
		}
		if e.w.Hash() != h0 {
			t.Fatalf("%v: Step changed the canonical weights", d)
		}
		if viewsEqual(v0, cloneViews(e.w)) {
			t.Fatalf("%v: views were not perturbed", d)
		}
		e.SyncViews()
		if !viewsEqual(v0, cloneViews(e.w)) {
			t.Fatalf("%v: views differ from before the steps", d)
		}
		for ti := range q0 {
			for i := range q0[ti] {
				if q0[ti][i] != e.w.Tensors[ti].Q[i] {
					t.Fatalf("Q changed at %d/%d", ti, i)
				}
			}
		}
	}
}

// The perturbed view is exactly the canonical value ± ε·z on each tensor's grid.
func TestPerturbedViewIsExact(t *testing.T) {
	e := testEngine(t, Rademacher, 5)
	s := DeriveSeed("test-run", 1, 1)
	e.perturb(s, +1)
	for ti, tn := range e.w.Tensors {
		if !tn.Trainable {
			continue
		}
		z := make([]int32, tn.Len())
		Rademacher.Fill(s, tn.Offset, z)
		for i, q := range tn.Q {
			want := float32(float64(q+e.epsQ[ti]*z[i]) * math.Ldexp(1, -tn.Exp))
			if tn.View[i] != want {
				t.Fatalf("tensor %d element %d: view %v, want %v", ti, i, tn.View[i], want)
			}
		}
	}
}

// Regression guard for the update's sign: an update built from the step's own
// projected gradient must lower the loss it was measured on.
func TestUpdateDescends(t *testing.T) {
	e := testEngine(t, Rademacher, 11)
	e.cfg.LR = 0.5
	loss := newQuadLoss(e.w, rand.New(rand.NewPCG(11, 11)), 0.5)
	for i := 0; i < 10; i++ {
		e.SyncViews()
		before, _ := loss.Loss()
		s := DeriveSeed(e.cfg.Run, 1, uint64(i))
		r, err := e.Step(loss, s)
		if err != nil {
			t.Fatal(err)
		}
		var code [1]int8
		exp, err := Quantize([]float64{r.G}, []float64{s.CodeUniform()}, code[:])
		if err != nil {
			t.Fatal(err)
		}
		e.Apply([]Update{{Machine: 1, Sample: uint64(i), Exp: exp, Code: code[0]}})
		e.SyncViews()
		after, _ := loss.Loss()
		if !(after < before) {
			t.Fatalf("step %d: loss went from %g to %g (g=%g): update has the wrong sign", i, before, after, r.G)
		}
	}
}

type failingLoss struct{ calls int }

func (f *failingLoss) Loss() (float64, error) {
	f.calls++
	if f.calls == 2 {
		return 0, fmt.Errorf("forward exploded")
	}
	return math.NaN(), nil
}

func TestStepErrors(t *testing.T) {
	e := testEngine(t, Rademacher, 13)
	h0 := e.w.Hash()
	if _, err := e.Step(&failingLoss{}, DeriveSeed("r", 1, 1)); err == nil {
		t.Fatal("a failing forward pass must fail the step")
	}
	f := &failingLoss{calls: 2}
	if _, err := e.Step(f, DeriveSeed("r", 1, 1)); err == nil {
		t.Fatal("a NaN loss must fail the step")
	}
	if e.w.Hash() != h0 {
		t.Fatal("failed steps changed the weights")
	}
}

func TestNewWeightsAndEngineErrors(t *testing.T) {
	bad := [][]TensorSpec{
		{{Name: "a", Shape: []int{2, 2}, Data: make([]float32, 3)}},
		{{Name: "a", Shape: []int{0}, Data: nil}},
		{{Name: "a", Shape: []int{1}, Data: []float32{float32(math.NaN())}}},
		{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}},
	}
	for i, specs := range bad {
		if _, err := NewWeights(specs); err == nil {
			t.Errorf("case %d: want an error", i)
		}
	}
	w, err := NewWeights([]TensorSpec{{Name: "a", Shape: []int{4}, Data: []float32{1, 2, 3, 4}, Trainable: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Run: "", Eps: 1e-3, LR: 1},
		{Run: "r", Eps: 0, LR: 1},
		{Run: "r", Eps: 1e-3, LR: math.Inf(1)},
		{Run: "r", Eps: 1e-3, LR: -1},
		{Run: "r", Eps: 1e-12, LR: 1}, // below the grid
		{Run: "r", Dist: 9, Eps: 1e-3, LR: 1},
	} {
		if _, err := NewEngine(c, w); err == nil {
			t.Errorf("config %+v: want an error", c)
		}
	}
}

// Base weights land on the grid with at most half a grid step of error, and
// the views read back the quantised values.
func TestQuantisedBase(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	data := make([]float32, 1000)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	orig := append([]float32(nil), data...)
	w, err := NewWeights([]TensorSpec{{Name: "a", Shape: []int{1000}, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	tn := w.Tensors[0]
	step := math.Ldexp(1, -tn.Exp)
	for i := range orig {
		if d := math.Abs(float64(orig[i]) - float64(tn.Q[i])*step); d > step/2 {
			t.Fatalf("element %d off the grid by %g (step %g)", i, d, step)
		}
		if float64(tn.View[i]) != float64(tn.Q[i])*step {
			t.Fatalf("view %d is not the quantised value", i)
		}
	}
}

func TestSetDigestOrderIndependent(t *testing.T) {
	us := randomUpdates(rand.New(rand.NewPCG(5, 5)), 100)
	var a, b SetDigest
	for _, u := range us {
		a.Add(u)
	}
	for i := len(us) - 1; i >= 0; i-- {
		b.Add(us[i])
	}
	if a != b || a == (SetDigest{}) {
		t.Fatalf("digests %v and %v", a, b)
	}
	c := a
	c.Add(Update{Machine: 1, Sample: 1000})
	if c == a {
		t.Fatal("adding an update did not change the digest")
	}
}

func TestHashSeesEveryElement(t *testing.T) {
	e := testEngine(t, Rademacher, 17)
	h := e.w.Hash()
	last := e.w.Tensors[len(e.w.Tensors)-1]
	last.Q[last.Len()-1]++
	if e.w.Hash() == h {
		t.Fatal("hash ignored a change in the last element")
	}
}

// The schedule follows the update's own sample index: warm-up ramps η,
// decay takes it to zero, and an update past the decay horizon is a no-op.
func TestLearningRateSchedule(t *testing.T) {
	c := Config{Run: "r", Eps: 1e-3, LR: 0.5, Warmup: 4, Decay: 100}
	for _, tc := range []struct {
		s    uint64
		want float64
	}{{0, 0.5 * 0.25 * 1}, {1, 0.5 * 0.5 * 0.99}, {3, 0.5 * 0.97}, {50, 0.25}, {100, 0}, {1000, 0}} {
		if got := c.LRAt(tc.s); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("LRAt(%d) = %v, want %v", tc.s, got, tc.want)
		}
	}
	if (Config{LR: 0.3}).LRAt(12345) != 0.3 {
		t.Error("no schedule must mean a constant rate")
	}
	e := testEngine(t, Rademacher, 21)
	e.cfg.Decay = 10
	h := e.w.Hash()
	e.Apply([]Update{{Machine: 1, Sample: 10, Exp: 128, Code: 100}})
	if e.w.Hash() != h {
		t.Fatal("an update past the decay horizon changed the weights")
	}
	e.Apply([]Update{{Machine: 1, Sample: 9, Exp: 128, Code: 100}})
	if e.w.Hash() == h {
		t.Fatal("an update inside the schedule did not change the weights")
	}
}

// Sub undoes Add in any interleaving, and the digest of a set with an excluded
// machine is the same however it was reached.
func TestSetDigestSubAndExclusion(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	us := randomUpdates(rng, 200)
	var all SetDigest
	for _, u := range us {
		all.Add(u)
	}
	// Add then Sub is the identity, from zero and from a non-zero digest.
	for _, start := range []SetDigest{{}, all} {
		d := start
		for _, u := range us {
			d.Add(u)
		}
		rng.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
		for _, u := range us {
			d.Sub(u)
		}
		if d != start {
			t.Fatalf("Add then Sub of every update: %v, want %v", d, start)
		}
	}
	var z SetDigest
	z.Sub(us[0]) // borrows through every word
	z.Add(us[0])
	if z != (SetDigest{}) {
		t.Fatal("Sub from zero then Add is not the identity")
	}
	// Excluding machine 3: the other machines' updates plus its exclusion term,
	// reached by a fresh build or by removing from the full set, in any order.
	const m = 3
	var want SetDigest
	want.AddHash(ExclusionHash(m))
	for _, u := range us {
		if u.Machine != m {
			want.Add(u)
		}
	}
	for round := 0; round < 5; round++ {
		d := SetDigest{}
		rng.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
		excludeAt := rng.IntN(len(us) + 1)
		for i, u := range us {
			if i == excludeAt {
				d.AddHash(ExclusionHash(m))
			}
			d.Add(u)
		}
		if excludeAt == len(us) {
			d.AddHash(ExclusionHash(m))
		}
		for _, u := range us {
			if u.Machine == m {
				d.Sub(u)
			}
		}
		if d != want {
			t.Fatalf("round %d: %v, want %v", round, d, want)
		}
	}
	if ExclusionHash(m) == ExclusionHash(m+1) || ExclusionHash(m) == UpdateHash(Update{Machine: m}) {
		t.Fatal("exclusion hashes collide")
	}
	// Known answers, computed with Python's hashlib (docs/PROTOCOL.md §7).
	for m, want := range map[uint64]string{
		1:          "23a344b189d80531b019c1982b30a1c96c36ee910a840061b1155a465209711b",
		^uint64(0): "30da8a4edc3be4b4d9bc5e1ae65cd10d46d98b3ae7b91caa4badbc64f1e27510",
	} {
		h := ExclusionHash(m)
		if hex.EncodeToString(h[:]) != want {
			t.Fatalf("ExclusionHash(%d) = %x, want %s", m, h, want)
		}
	}
}
