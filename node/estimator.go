package node

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// scaleRef is the RMS at which the "scale=rms" rule gives a tensor factor 1:
// a tensor whose base weights have RMS r gets 2^round(log2(r/scaleRef)).
const scaleRef = 1.0 / 16

// withEstimator resolves s.Estimator against the base weights w unless the
// settings already carry the run's estimator (ApplyManifest).
func (s Settings) withEstimator(w *zo.Weights) (Settings, error) {
	if s.estimator != nil || s.Estimator == "" {
		return s, nil
	}
	spec, err := ResolveEstimator(s.Estimator, w)
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
//
// The result is explicit (per-tensor exponents by name), so peers that join
// read it from the manifest and never re-derive it.
func ResolveEstimator(rule string, w *zo.Weights) (*store.EstimatorSpec, error) {
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
		case key == "scale" && val == "rms":
			spec.Scale = rmsScale(w)
		default:
			return nil, fmt.Errorf("node: unknown estimator %q (want mezo, parts=N or scale=rms, comma-separated)", part)
		}
	}
	if spec.Parts == 0 && len(spec.Scale) == 0 {
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
