package node

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/dataset"
	"github.com/zopeer/zopeer/model/tokenizer"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// scaleRef is the RMS at which the "scale=rms" rule gives a tensor factor 1:
// a tensor whose base weights have RMS r gets 2^round(log2(r/scaleRef)).
const scaleRef = 1.0 / 16

// withEstimator resolves s.Estimator against the base weights w unless the
// settings already carry the run's estimator (ApplyManifest). lm is the
// model w was made from, for the rules that measure (scale=grad).
func (s Settings) withEstimator(w *zo.Weights, lm *model.Model) (Settings, error) {
	if s.estimator != nil || s.Estimator == "" {
		return s, nil
	}
	energy := func(only func(*zo.Tensor) bool) ([]float64, error) { return s.gradEnergy(w, lm, only) }
	spec, err := ResolveEstimator(s.Estimator, w, energy)
	if err != nil {
		return s, err
	}
	s.estimator = spec
	return s, nil
}

// ResolveEstimator turns an --estimator rule into the manifest's estimator
// for the base weights w (docs/LEARNING.md, "Estimators"): a comma-separated
// list of
//
//	mezo          nothing (the default; also "")
//	parts=N       each update perturbs one of N groups of consecutive tensors
//	scale=rms     each tensor's perturbation and step are scaled by the power
//	              of two nearest its base RMS / (1/16)
//	scale=vectors every trainable tensor of two or more dimensions (the
//	              matrices and embeddings) gets 2^-8: the perturbation is
//	              concentrated on the vectors (biases, norm gains), a
//	              structured Sparse MeZO that still moves the matrices a little
//	scale=grad    each tensor's perturbation and step are scaled by
//	              2^round(log2(e_t / max e) / 2), at least 2^-8, where e_t is
//	              the tensor's projected-gradient energy per element at the
//	              base, measured by energy (gradEnergy)
//	scale=vectors-grad
//	              scale=vectors, then of the vectors only those whose
//	              measured energy per element is at least 1/32 of the
//	              largest vector's stay at 1; the others get 2^-8 too
//	onesided=Q    forward differences with a shared base (DeepZero-style, a
//	              producer rule): each group of Q samples of a step trains
//	              on the group's first mini-batch, one pass at θ and one at
//	              θ+εz per sample, Q+1 passes for Q updates
//
// The result is explicit (per-tensor exponents by name), so peers that join
// read it from the manifest and never re-derive it.
//
// energy measures the trainable tensors that only selects (nil: all) and
// returns each one's energy per element by tensor index (0 elsewhere).
func ResolveEstimator(rule string, w *zo.Weights, energy func(only func(*zo.Tensor) bool) ([]float64, error)) (*store.EstimatorSpec, error) {
	var spec store.EstimatorSpec
	for _, part := range strings.Split(rule, ",") {
		part = strings.TrimSpace(part)
		key, val, _ := strings.Cut(part, "=")
		switch {
		case part == "" || part == "mezo":
		case key == "parts":
			n, err := strconv.Atoi(val)
			if err != nil || n < 2 {
				return nil, fmt.Errorf("node: estimator %q: parts wants an integer ≥ 2", part)
			}
			spec.Parts = n
		case key == "onesided":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 4096 {
				return nil, fmt.Errorf("node: estimator %q: onesided wants an integer in 1..4096", part)
			}
			spec.OneSided = n
		case key == "scale" && val == "rms":
			spec.Scale = rmsScale(w)
		case key == "scale" && val == "vectors":
			spec.Scale = vectorScale(w)
		case key == "scale" && val == "grad":
			e, err := energy(nil)
			if err != nil {
				return nil, fmt.Errorf("node: estimator %q: %w", part, err)
			}
			spec.Scale = gradScale(w, e)
		case key == "scale" && val == "vectors-grad":
			e, err := energy(isVector)
			if err != nil {
				return nil, fmt.Errorf("node: estimator %q: %w", part, err)
			}
			spec.Scale = vectorGradScale(w, e)
		default:
			return nil, fmt.Errorf("node: unknown estimator %q (want mezo, parts=N, onesided=Q, scale=rms, scale=vectors, scale=grad or scale=vectors-grad, comma-separated)", part)
		}
	}
	if spec.Parts == 0 && len(spec.Scale) == 0 && spec.OneSided == 0 {
		return nil, nil
	}
	return &spec, nil
}

// rmsScale is the "scale=rms" rule over the trainable tensors' base values.
func rmsScale(w *zo.Weights) map[string]int {
	out := map[string]int{}
	for _, t := range w.Tensors {
		if !t.Trainable || len(t.Q) == 0 {
			continue
		}
		var ss float64
		for _, q := range t.Q {
			ss += float64(q) * float64(q)
		}
		rms := math.Ldexp(math.Sqrt(ss/float64(len(t.Q))), -t.Exp)
		k := int(math.Round(math.Log2(max(rms, 1e-6) / scaleRef)))
		if k = max(-20, min(20, k)); k != 0 {
			out[t.Name] = k
		}
	}
	return out
}

// isVector reports a tensor of fewer than two dimensions (a bias or a
// norm's gain or bias), the tensors scale=vectors keeps at 1.
func isVector(t *zo.Tensor) bool { return len(t.Shape) < 2 }

// vectorScale is the scale=vectors rule.
func vectorScale(w *zo.Weights) map[string]int {
	out := map[string]int{}
	for _, t := range w.Tensors {
		if t.Trainable && !isVector(t) {
			out[t.Name] = gradMinScale
		}
	}
	return out
}

// vectorGradCut is the scale=vectors-grad threshold: a vector stays at 1
// if its energy per element is at least 1/vectorGradCut of the largest.
const vectorGradCut = 32

// vectorGradScale is the scale=vectors-grad rule over measured energies e
// (per tensor, vectors measured). On the English task most of the vectors'
// gradient energy sits in a third of their elements, so the others mostly
// add noise; measured, it learns as fast as scale=vectors, not faster
// (docs/LEARNING.md, "Second round").
func vectorGradScale(w *zo.Weights, e []float64) map[string]int {
	out := vectorScale(w)
	top := 0.0
	for ti, t := range w.Tensors {
		if t.Trainable && isVector(t) {
			top = max(top, e[ti])
		}
	}
	for ti, t := range w.Tensors {
		if t.Trainable && isVector(t) && !(top > 0 && e[ti]*vectorGradCut >= top) {
			out[t.Name] = gradMinScale
		}
	}
	return out
}

// gradMinScale floors the scale=grad rule: 2^-8 leaves a tensor with
// almost no gradient a perturbation 256 times smaller, not none.
const gradMinScale = -8

// gradScale is the scale=grad rule over measured energies e (per tensor).
func gradScale(w *zo.Weights, e []float64) map[string]int {
	top := 0.0
	for ti, t := range w.Tensors {
		if t.Trainable {
			top = max(top, e[ti])
		}
	}
	out := map[string]int{}
	if !(top > 0) {
		return out
	}
	for ti, t := range w.Tensors {
		if !t.Trainable {
			continue
		}
		k := gradMinScale
		if e[ti] > 0 {
			k = max(gradMinScale, int(math.Round(math.Log2(e[ti]/top)/2)))
		}
		if k != 0 {
			out[t.Name] = k
		}
	}
	return out
}

// calibSamples is how many SPSA samples measure each tensor's energy.
const calibSamples = 4

// gradEnergy measures, at the base weights w, each trainable tensor's
// projected-gradient energy per element: the mean ĝ² of calibSamples SPSA
// steps that perturb that tensor alone (zo.Engine.StepTensor, seeds of the
// run name + "/calibrate"), on the first mini-batches of machine 0 in the
// run's data order, divided by the tensor's size. It costs
// 2 × calibSamples forward passes per tensor measured (the trainable ones
// that only selects; nil: all), once, at init.
func (s Settings) gradEnergy(w *zo.Weights, lm *model.Model, only func(*zo.Tensor) bool) ([]float64, error) {
	tok, err := tokenizer.Load(filepath.Join(s.Model, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	ctxLen := s.Context
	if ctxLen <= 0 || ctxLen > lm.Config().MaxPos {
		ctxLen = lm.Config().MaxPos
	}
	data, _, err := dataset.LoadWith(s.Data, tok, ctxLen, dataset.Options{Window: s.Window, Overlap: s.Overlap})
	if err != nil {
		return nil, err
	}
	d, err := zo.ParseDist(s.Dist)
	if err != nil {
		return nil, err
	}
	eng, err := zo.NewEngine(zo.Config{Run: s.Run, Dist: d, Eps: s.Eps}, w)
	if err != nil {
		return nil, err
	}
	lm.SetSource(eng)
	defer eng.SyncViews()
	e := make([]float64, len(w.Tensors))
	for ti, t := range w.Tensors {
		if !t.Trainable || only != nil && !only(t) {
			continue
		}
		for k := range uint64(calibSamples) {
			seqs := make([]model.Sequence, s.BatchSize)
			for j := range seqs {
				r := data.Record(data.Sample(s.Run, 0, k*uint64(s.BatchSize)+uint64(j)))
				seqs[j] = model.Sequence{Tokens: r.Tokens, LossFrom: r.LossStart}
			}
			r, err := eng.StepTensor(model.Batch{Model: lm, Seqs: seqs}, zo.DeriveSeed(s.Run+"/calibrate", 0, k), ti)
			if err != nil {
				return nil, fmt.Errorf("node: measuring %s: %w", t.Name, err)
			}
			e[ti] += r.G * r.G / calibSamples
		}
		e[ti] /= float64(t.Len())
	}
	return e, nil
}
