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
