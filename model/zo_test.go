package model

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
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

// streamed returns the fixture loaded twice: once reading the engine's
// materialised views (the Params' Data), once streaming every tensor from the
// int32 weights through the engine (DropViews, SetSource).
func streamed(t *testing.T, fixture string) (viewsM, streamM *Model, viewsE, streamE *zo.Engine) {
	t.Helper()
	mk := func(stream bool) (*Model, *zo.Engine) {
		m := load(t, fixture)
		var specs []zo.TensorSpec
		for _, p := range m.Params() {
			specs = append(specs, zo.TensorSpec(p))
		}
		w, err := zo.NewWeights(specs)
		if err != nil {
			t.Fatal(err)
		}
		e, err := zo.NewEngine(zo.Config{Run: "stream", Eps: 1e-3, LR: 1e-3}, w)
		if err != nil {
			t.Fatal(err)
		}
		if stream {
			w.DropViews()
			m.SetSource(e)
		}
		return m, e
	}
	viewsM, viewsE = mk(false)
	streamM, streamE = mk(true)
	return
}

// A model streaming its weights from the engine computes exactly what it
// computes from materialised views: the same losses bit for bit, at the
// base, inside ZO steps (θ ± εz) and after updates, and saves the same file.
func TestStreamedMatchesViews(t *testing.T) {
	for _, fixture := range []string{"gpt2", "llama", "qwen2"} {
		t.Run(fixture, func(t *testing.T) {
			vm, sm, ve, se := streamed(t, fixture)
			if sm.Params()[0].Data != nil {
				t.Fatal("SetSource kept the float32 weights")
			}
			e := readExpected(t, filepath.Join("testdata", fixture))
			for i := range 4 {
				lv, _, err := vm.Loss(e.batch())
				if err != nil {
					t.Fatal(err)
				}
				ls, _, err := sm.Loss(e.batch())
				if err != nil {
					t.Fatal(err)
				}
				if lv != ls {
					t.Fatalf("round %d: loss %v from views, %v streamed", i, lv, ls)
				}
				s := zo.DeriveSeed("stream", 1, uint64(i))
				rv, err := ve.Step(Batch{vm, e.batch()}, s)
				if err != nil {
					t.Fatal(err)
				}
				rs, err := se.Step(Batch{sm, e.batch()}, s)
				if err != nil {
					t.Fatal(err)
				}
				if rv != rs || rv.LossPlus == rv.LossMinus {
					t.Fatalf("round %d: step %+v from views, %+v streamed", i, rv, rs)
				}
				u := []zo.Update{{Machine: 1, Sample: uint64(i), Exp: 125, Code: 100}}
				ve.Apply(u)
				se.Apply(u)
				ve.SyncViews()
				se.SyncViews()
			}
			lv, _ := vm.Logits(e.Cases[0].Tokens)
			ls, _ := sm.Logits(e.Cases[0].Tokens)
			if !slices.Equal(lv, ls) {
				t.Fatal("logits differ")
			}
			dv, ds := t.TempDir(), t.TempDir()
			if err := vm.Save(dv, vm.DType()); err != nil {
				t.Fatal(err)
			}
			if err := sm.Save(ds, sm.DType()); err != nil {
				t.Fatal(err)
			}
			bv, _ := os.ReadFile(filepath.Join(dv, "model.safetensors"))
			bs, _ := os.ReadFile(filepath.Join(ds, "model.safetensors"))
			if !bytes.Equal(bv, bs) {
				t.Fatal("saved files differ")
			}
		})
	}
}
