package zo

import (
	"slices"
	"testing"
)

var goldenEstimator = Estimator{Parts: 3, Scale: map[string]int{"emb": -1, "big": 2}}

// The golden scenario under an estimator: recorded with the AVX-512 kernels
// and with -tags purego (the same hash); a change is a protocol change.
func TestGoldenEstimator(t *testing.T) {
	for d, want := range map[Dist]string{
		Rademacher: "0ba5619fa9f3e822f26aacf17d41824869c8da70f96dc5c27b96eabaea161f0b",
		Gauss4:     "b966ced440dcc701a0e590cdf510b23623e47af6ebc142162d512db91a3b1a19",
	} {
		if got := goldenScenarioWith(t, d, goldenEstimator); got != want {
			t.Errorf("%v: weights hash %s, want %s", d, got, want)
		}
	}
}

// Under parts, an update moves exactly the tensors of its group, by the
// scaled coefficient; the groups cut the trainable tensors in layout order.
func TestEstimatorParts(t *testing.T) {
	specs := []TensorSpec{
		{Name: "a", Shape: []int{200}, Trainable: true},
		{Name: "frozen", Shape: []int{10}},
		{Name: "b", Shape: []int{130}, Trainable: true},
		{Name: "c", Shape: []int{5}, Trainable: true},
		{Name: "d", Shape: []int{300}, Trainable: true},
	}
	for i := range specs {
		specs[i].Data = make([]float32, specs[i].Shape[0])
		for j := range specs[i].Data {
			specs[i].Data[j] = float32(j%7-3) / 8
		}
	}
	w, err := NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	est := Estimator{Parts: 2, Scale: map[string]int{"b": 3}}
	e, err := NewEngine(Config{Run: "parts", Dist: Rademacher, Eps: 1e-3, LR: 1e-2, Estimator: est}, w)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, -1, 0, 1, 1}; !slices.Equal(e.group, want) {
		t.Fatalf("groups %v, want %v", e.group, want)
	}
	plain, err := NewEngine(Config{Run: "parts", Dist: Rademacher, Eps: 1e-3, LR: 1e-2}, w)
	if err != nil {
		t.Fatal(err)
	}
	// ε_t is rounded once, after the scaling: within half a unit of 8 plain units each.
	if d := e.EpsGrid(2) - 8*plain.EpsGrid(2); d < -4 || d > 4 || e.EpsGrid(0) != plain.EpsGrid(0) {
		t.Errorf("eps grid %d vs %d: scale 2^3 not applied", e.EpsGrid(2), plain.EpsGrid(2))
	}
	seen := map[int]int{}
	for s := range uint64(200) {
		u := Update{Machine: 1, Sample: s, Exp: 120, Code: 77}
		seed := DeriveSeed("parts", 1, s)
		p := seed.Part(2)
		seen[p]++
		for ti := range w.Tensors {
			c, c0 := e.Coeff(u, seed, ti), plain.Coeff(u, seed, ti)
			switch {
			case e.group[ti] != p:
				if c != 0 {
					t.Fatalf("sample %d: tensor %d outside group %d moves (%d)", s, ti, p, c)
				}
			case ti == 2:
				// 2^3 times the plain coefficient, up to the stochastic rounding of each.
				if d := c - 8*c0; d < -8 || d > 8 {
					t.Fatalf("sample %d: scaled coefficient %d, plain %d", s, c, c0)
				}
			case c != c0:
				t.Fatalf("sample %d tensor %d: coefficient %d, plain %d", s, ti, c, c0)
			}
		}
	}
	if seen[0] < 70 || seen[1] < 70 || len(seen) != 2 {
		t.Errorf("group draws %v over 200 samples", seen)
	}
	// During a step, only the chosen group's views are perturbed.
	seed := DeriveSeed("parts", 1, 0)
	e.SyncViews()
	before := make([][]float32, len(w.Tensors))
	for ti, tn := range w.Tensors {
		before[ti] = slices.Clone(tn.View)
	}
	loss := lossFunc(func() (float64, error) {
		for ti, tn := range w.Tensors {
			buf := make([]float32, tn.Len())
			e.FillView(ti, 0, buf)
			if moved := !slices.Equal(buf, before[ti]); moved != (e.group[ti] == seed.Part(2)) {
				t.Errorf("tensor %d (group %d, update's %d): perturbed %v", ti, e.group[ti], seed.Part(2), moved)
			}
		}
		return 0, nil
	})
	if _, err := e.Step(loss, seed); err != nil {
		t.Fatal(err)
	}
}

type lossFunc func() (float64, error)

func (f lossFunc) Loss() (float64, error) { return f() }

// Applying updates under an estimator and removing some leaves exactly the
// weights of applying the others, in any order and batching.
func TestEstimatorRemoveExact(t *testing.T) {
	mk := func() (*Engine, *Weights) {
		w, err := NewWeights([]TensorSpec{
			{Name: "emb", Shape: []int{300}, Data: make([]float32, 300), Trainable: true},
			{Name: "big", Shape: []int{1000}, Data: make([]float32, 1000), Trainable: true},
			{Name: "bias", Shape: []int{17}, Data: make([]float32, 17), Trainable: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range w.Tensors {
			for i := range tn.Q {
				tn.Q[i] = int32(i*7919%2001 - 1000)
			}
		}
		e, err := NewEngine(Config{Run: "rm", Dist: Rademacher, Eps: 1e-3, LR: 1e-3, Estimator: goldenEstimator}, w)
		if err != nil {
			t.Fatal(err)
		}
		return e, w
	}
	var us []Update
	for s := range uint64(40) {
		us = append(us, Update{Machine: 3, Sample: s, Exp: 124, Code: int8(s*37%255 - 127)})
	}
	a, wa := mk()
	a.Apply(us)
	a.Remove(us[10:25])
	b, wb := mk()
	others := append(slices.Clone(us[25:]), us[:10]...)
	for _, u := range others {
		b.Apply([]Update{u})
	}
	if wa.Hash() != wb.Hash() {
		t.Fatal("apply all then remove some differs from applying the others")
	}
}

// StepTensor perturbs one tensor: the others keep their canonical views.
func TestStepTensor(t *testing.T) {
	e := testEngine(t, Rademacher, 3)
	e.SyncViews()
	canon := make([][]float32, len(e.w.Tensors))
	for ti, tn := range e.w.Tensors {
		canon[ti] = slices.Clone(tn.View)
	}
	for only, tn := range e.w.Tensors {
		if !tn.Trainable {
			continue
		}
		loss := lossFunc(func() (float64, error) {
			for ti, tt := range e.w.Tensors {
				buf := make([]float32, tt.Len())
				e.FillView(ti, 0, buf)
				if moved := !slices.Equal(buf, canon[ti]); moved != (ti == only) {
					t.Errorf("StepTensor(%d): tensor %d perturbed %v", only, ti, moved)
				}
			}
			return 0, nil
		})
		if _, err := e.StepTensor(loss, DeriveSeed("only", 1, 1), only); err != nil {
			t.Fatal(err)
		}
		e.SyncViews()
	}
	if _, err := e.StepTensor(lossFunc(func() (float64, error) { return 0, nil }), DeriveSeed("only", 1, 1), len(e.w.Tensors)); err == nil {
		t.Error("StepTensor on a tensor that does not exist")
	}
}
