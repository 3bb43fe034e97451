package zo

import (
	"math"
	"math/rand/v2"
	"testing"
)

// leastSquares is a toy regression problem: rows a_i ~ N(0, I/d), b_i = a_i·θ* + noise.
type leastSquares struct {
	a    [][]float64
	b    []float64
	view []float32 // the engine's view, for losses under the engine
	row  int       // the current mini-batch (one row)
}

func newLeastSquares(rng *rand.Rand, rows, d int) *leastSquares {
	ls := &leastSquares{}
	star := make([]float64, d)
	for j := range star {
		star[j] = rng.NormFloat64()
	}
	for i := 0; i < rows; i++ {
		a := make([]float64, d)
		var dot float64
		for j := range a {
			a[j] = rng.NormFloat64() / math.Sqrt(float64(d))
			dot += a[j] * star[j]
		}
		ls.a = append(ls.a, a)
		ls.b = append(ls.b, dot+0.01*rng.NormFloat64())
	}
	return ls
}

func (ls *leastSquares) rowLoss(i int, theta func(j int) float64) float64 {
	var r float64
	for j, a := range ls.a[i] {
		r += a * theta(j)
	}
	r -= ls.b[i]
	return r * r / 2
}

func (ls *leastSquares) fullLoss(theta func(j int) float64) float64 {
	var s float64
	for i := range ls.a {
		s += ls.rowLoss(i, theta)
	}
	return s / float64(len(ls.a))
}

func (ls *leastSquares) Loss() (float64, error) {
	return ls.rowLoss(ls.row, func(j int) float64 { return float64(ls.view[j]) }), nil
}

// ZO-SGD with the one-byte code (batches of 8 samples sharing one exponent,
// applied through the engine) must track ZO-SGD with float64 projected
// gradients (an independent float implementation using the same z and
// samples): both cut the loss by over 95%, and the one-byte run ends within
// 15% of the float run's loss.
func TestOneByteTracksFloatSGD(t *testing.T) {
	const (
		d, rows, batch = 32, 256, 8
		eps, lr        = 1e-3, 0.02
	)
	rounds := 1500
	rng := rand.New(rand.NewPCG(2024, 1))
	ls := newLeastSquares(rng, rows, d)
	w, err := NewWeights([]TensorSpec{{Name: "theta", Shape: []int{d}, Data: make([]float32, d), Trainable: true}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Run: "toy", Dist: Rademacher, Eps: eps, LR: lr}
	e, err := NewEngine(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	ls.view = w.Tensors[0].View
	thetaF := make([]float64, d) // the float run
	z := make([]int32, d)

	initial := ls.fullLoss(func(j int) float64 { return 0 })
	g, u := make([]float64, batch), make([]float64, batch)
	codes := make([]int8, batch)
	gf := make([]float64, batch)
	for r := 0; r < rounds; r++ {
		e.SyncViews()
		for k := 0; k < batch; k++ {
			sample := uint64(r*batch + k)
			ls.row = int(sample*7919) % rows
			s := DeriveSeed(cfg.Run, 0, sample)
			res, err := e.Step(ls, s)
			if err != nil {
				t.Fatal(err)
			}
			g[k], u[k] = res.G, s.CodeUniform()
			// Float run: same sample, same z, exact float64 arithmetic.
			Rademacher.Fill(s, 0, z)
			plus := ls.rowLoss(ls.row, func(j int) float64 { return thetaF[j] + eps*float64(z[j]) })
			minus := ls.rowLoss(ls.row, func(j int) float64 { return thetaF[j] - eps*float64(z[j]) })
			gf[k] = (plus - minus) / (2 * eps)
		}
		exp, err := Quantize(g, u, codes)
		if err != nil {
			t.Fatal(err)
		}
		us := make([]Update, batch)
		for k := range us {
			us[k] = Update{Machine: 0, Sample: uint64(r*batch + k), Exp: exp, Code: codes[k]}
			Rademacher.Fill(DeriveSeed(cfg.Run, 0, us[k].Sample), 0, z)
			for j := range thetaF {
				thetaF[j] -= lr * gf[k] * float64(z[j])
			}
		}
		e.Apply(us)
	}
	e.SyncViews()
	view := w.Tensors[0].View
	finalQ := ls.fullLoss(func(j int) float64 { return float64(view[j]) })
	finalF := ls.fullLoss(func(j int) float64 { return thetaF[j] })
	t.Logf("loss: initial %.5f, float-g %.6f, one-byte %.6f", initial, finalF, finalQ)
	if finalF > 0.05*initial || finalQ > 0.05*initial {
		t.Fatalf("did not converge: initial %g, float %g, one-byte %g", initial, finalF, finalQ)
	}
	if finalQ > 1.15*finalF {
		t.Fatalf("one-byte loss %g is more than 15%% above float loss %g", finalQ, finalF)
	}
}
