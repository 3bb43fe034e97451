package node

import (
	"context"
	"log/slog"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// --estimator resolves into the manifest, trains, and a second opening of
// the home has the same weights; a different estimator is another run and
// is refused on that home. (Replay exactness under an estimator is
// zo's TestEstimatorRemoveExact and golden scenario.)
func TestTrainWithEstimator(t *testing.T) {
	ctx := context.Background()
	s := Defaults
	s.Home = t.TempDir()
	s.Steps, s.Samples, s.BatchSize, s.EvalEvery, s.CkptEvery = 3, 4, 2, 0, 0
	s.Estimator = "parts=3,scale=rms"
	s, err := s.WithEmbeddedDefault()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	r, err := OpenRun(ctx, s, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Log.Manifest()
	if m.Estimator == nil || m.Estimator.Parts != 3 || len(m.Estimator.Scale) == 0 {
		t.Fatalf("manifest estimator %+v", m.Estimator)
	}
	before, after, err := r.Train(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := r.Engine.Weights().Hash()
	r.Close()
	if !(after < before) {
		t.Errorf("eval loss %v → %v", before, after)
	}
	r2, err := OpenRun(ctx, s, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Engine.Weights().Hash() != h {
		t.Error("reopened home has other weights")
	}
	us := r2.Log.Stats().Updates
	r2.Close()
	if us != 12 {
		t.Errorf("%d updates logged, want 12", us)
	}
	s.Estimator = "parts=2"
	if _, err := OpenRun(ctx, s, nil, log); err == nil {
		t.Error("a home made with parts=3 opened with parts=2")
	}
	for _, bad := range []string{"parts=1", "parts=x", "sparse", "scale=max"} {
		if _, err := ResolveEstimator(bad, &zo.Weights{}, nil); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
}

// scale=grad measures each tensor at the base and writes powers of two ≤ 1
// into the manifest, the most gradient-dense tensor at 1 (absent), the rest
// at 2^-8 or above.
func TestScaleGradRule(t *testing.T) {
	ctx := context.Background()
	s := Defaults
	s.Home = t.TempDir()
	s.BatchSize, s.Samples = 2, 2
	s.Estimator = "scale=grad"
	s, err := s.WithEmbeddedDefault()
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenRun(ctx, s, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	est := r.Log.Manifest().Estimator
	if est == nil || len(est.Scale) == 0 {
		t.Fatalf("estimator %+v", est)
	}
	trainable := 0
	for _, tn := range r.Engine.Weights().Tensors {
		if tn.Trainable {
			trainable++
		}
	}
	if len(est.Scale) >= trainable {
		t.Errorf("every tensor scaled down (%d of %d): the top one must stay at 1", len(est.Scale), trainable)
	}
	for n, k := range est.Scale {
		if k < gradMinScale || k >= 0 {
			t.Errorf("%s: 2^%d", n, k)
		}
	}
}

// scale=vectors scales every matrix and embedding by 2^-8 and leaves the
// vectors (biases, norm gains) at 1.
func TestScaleVectorsRule(t *testing.T) {
	w, err := zo.NewWeights([]zo.TensorSpec{
		{Name: "m", Shape: []int{2, 3}, Data: make([]float32, 6), Trainable: true},
		{Name: "v", Shape: []int{3}, Data: make([]float32, 3), Trainable: true},
		{Name: "frozen", Shape: []int{2, 2}, Data: make([]float32, 4)},
	})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ResolveEstimator("scale=vectors", w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Scale) != 1 || spec.Scale["m"] != gradMinScale {
		t.Errorf("scale %v", spec.Scale)
	}
}

// scale=vectors-grad keeps at 1 the vectors whose energy per element is at
// least 1/32 of the largest vector's; every other tensor gets 2^-8, and
// only the vectors are measured.
func TestScaleVectorsGradRule(t *testing.T) {
	w, err := zo.NewWeights([]zo.TensorSpec{
		{Name: "m", Shape: []int{2, 3}, Data: make([]float32, 6), Trainable: true},
		{Name: "a", Shape: []int{3}, Data: make([]float32, 3), Trainable: true},
		{Name: "b", Shape: []int{3}, Data: make([]float32, 3), Trainable: true},
		{Name: "c", Shape: []int{3}, Data: make([]float32, 3), Trainable: true},
		{Name: "frozen", Shape: []int{2}, Data: make([]float32, 2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	energy := func(only func(*zo.Tensor) bool) ([]float64, error) {
		if only == nil || only(w.Tensors[0]) || !only(w.Tensors[1]) {
			t.Error("the rule asks to measure other tensors than the vectors")
		}
		return []float64{0, 1, 1.0 / 32, 1.0 / 33, 0}, nil
	}
	spec, err := ResolveEstimator("scale=vectors-grad", w, energy)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"m": gradMinScale, "c": gradMinScale}
	if len(spec.Scale) != len(want) || spec.Scale["m"] != want["m"] || spec.Scale["c"] != want["c"] {
		t.Errorf("scale %v, want %v", spec.Scale, want)
	}
	// On a real model through the measurement: the largest vector stays at
	// 1, every matrix is at 2^-8.
	ctx := context.Background()
	s := Defaults
	s.Home = t.TempDir()
	s.BatchSize, s.Samples = 2, 2
	s.Estimator = "scale=vectors-grad"
	if s, err = s.WithEmbeddedDefault(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRun(ctx, s, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sc := r.Log.Manifest().Estimator.Scale
	kept := 0
	for _, tn := range r.Engine.Weights().Tensors {
		k, scaled := sc[tn.Name]
		switch {
		case !tn.Trainable:
		case !isVector(tn) && k != gradMinScale:
			t.Errorf("matrix %s at 2^%d", tn.Name, k)
		case isVector(tn) && !scaled:
			kept++
		case isVector(tn) && k != gradMinScale:
			t.Errorf("vector %s at 2^%d", tn.Name, k)
		}
	}
	if kept == 0 {
		t.Error("no vector kept at 1")
	}
}
