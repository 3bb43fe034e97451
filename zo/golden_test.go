package zo

import (
	"encoding/hex"
	"math"
	"math/rand/v2"
	"testing"
)

// goldenScenario runs a fixed pipeline (quantised base, local SPSA steps,
// one-byte coding, batched and single applies) using only integer-derived
// inputs, so every platform must reach the same weights hash.
func goldenScenario(t *testing.T, d Dist) string { return goldenScenarioWith(t, d, Estimator{}) }

// goldenScenarioWith is goldenScenario under an estimator.
func goldenScenarioWith(t *testing.T, d Dist, est Estimator) string {
	return goldenScenarioCfg(t, Config{Run: "golden", Dist: d, Eps: 1e-3, LR: 1e-3, Estimator: est})
}

// goldenScenarioCfg is goldenScenario under cfg (run "golden"). In a
// FedKSeed-Pro run each sample's slot is ChooseSlot's.
func goldenScenarioCfg(t *testing.T, cfg Config) string {
	d := cfg.Dist
	rng := rand.New(rand.NewPCG(31337, 1))
	specs := []TensorSpec{
		{Name: "emb", Shape: []int{300, 17}, Trainable: true},
		{Name: "bias", Shape: []int{17}, Trainable: true},
		{Name: "frozen", Shape: []int{40}},
		{Name: "big", Shape: []int{chunkElems + 77}, Trainable: true},
	}
	for i := range specs {
		n := 1
		for _, x := range specs[i].Shape {
			n *= x
		}
		specs[i].Data = make([]float32, n)
		for j := range specs[i].Data {
			specs[i].Data[j] = float32(int32(rng.Uint32())>>8) * 0x1p-26
		}
	}
	w, err := NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	loss := &quadLoss{w: w}
	for _, tn := range w.Tensors {
		for range tn.View {
			loss.target = append(loss.target, float64(int32(rng.Uint32())>>16)*0x1p-14)
		}
	}
	var batch []Update
	for step := 0; step < 24; step++ {
		e.SyncViews()
		g := make([]float64, 4)
		u := make([]float64, 4)
		ups := make([]Update, 4)
		for k := range g {
			ups[k] = Update{Machine: 5, Sample: uint64(4*step + k)}
			if cfg.PoolChoices > 0 {
				ups[k].Slotted, ups[k].Slot = true, e.ChooseSlot(5, ups[k].Sample)
			}
			r, err := e.Step(loss, cfg.PerturbSeedOf(ups[k]))
			if err != nil {
				t.Fatal(err)
			}
			g[k], u[k] = r.G, DeriveSeed("golden", 5, ups[k].Sample).CodeUniform()
		}
		codes := make([]int8, 4)
		exp, err := Quantize(g, u, codes)
		if err != nil {
			t.Fatal(err)
		}
		for k := range codes {
			ups[k].Exp, ups[k].Code = exp, codes[k]
			batch = append(batch, ups[k])
		}
		if step%3 == 2 {
			e.Apply(batch[:1])
			e.Apply(batch[1:])
			batch = batch[:0]
		}
	}
	e.Apply(batch)
	e.SyncViews()
	l, _ := loss.Loss()
	h := w.Hash()
	t.Logf("%v: final loss %.9g", d, l)
	if math.IsNaN(l) {
		t.Fatal("NaN loss")
	}
	return hex.EncodeToString(h[:])
}

// The hashes were recorded on amd64 with the AVX-512 kernels and agree with
// the pure-Go kernels (-tags purego) and with arm64 (run under qemu-aarch64):
// see docs/BENCHMARKS.md. A change here is a protocol change.
func TestGoldenScenario(t *testing.T) {
	for d, want := range map[Dist]string{
		Rademacher: "a0d1d3424321c22896e95db25fc0fd8a24b0b25d26910fda25c4550ba07682f8",
		Gauss4:     "818469b23f5616d989193a6c25208158caf3f5e021d865b1fb9abee6312948dd",
	} {
		if got := goldenScenario(t, d); got != want {
			t.Errorf("%v: weights hash %s, want %s", d, got, want)
		}
	}
}
