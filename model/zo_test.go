package model

import (
	"path/filepath"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// The model plugs into the engine: Params convert to zo.TensorSpec, Batch is
// a zo.Loss, and a perturbation step through the engine's views changes the
// loss the model computes.
func TestWithEngine(t *testing.T) {
	m := load(t, "gpt2")
	var specs []zo.TensorSpec
	for _, p := range m.Params() {
		specs = append(specs, zo.TensorSpec(p))
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	e := readExpected(t, filepath.Join("testdata", "gpt2"))
	var loss zo.Loss = Batch{m, e.batch()}
	l0, err := loss.Loss()
	if err != nil {
		t.Fatal(err)
	}
	if d := l0 - e.Loss; d > 1e-4 || d < -1e-4 { // views are quantised to the engine's grid
		t.Errorf("loss with the engine's views %.6f, want ≈ %.6f", l0, e.Loss)
	}
	for _, tn := range w.Tensors {
		for i := range tn.View {
			tn.View[i] *= 0.5
		}
	}
	l1, err := loss.Loss()
	if err != nil {
		t.Fatal(err)
	}
	if l1 == l0 {
		t.Error("loss ignored writes to the engine's views")
	}
	w.SyncViews()
	if l2, _ := loss.Loss(); l2 != l0 {
		t.Errorf("loss after SyncViews %v, want %v", l2, l0)
	}
}
