package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/zopeer/zopeer/zo"
)

// FormatVersion is the on-disk format this package reads and writes: the key
// layout, the value encodings and the checkpoint file format. Bump it on any
// incompatible change; Open refuses stores of another version.
const FormatVersion = 1

// Manifest describes the run a store belongs to. Every peer of a run holds the
// same manifest; Open refuses a store whose manifest differs from the one the
// node was started with, because replaying a log under other hyperparameters
// silently yields other weights.
type Manifest struct {
	FormatVersion int               `json:"format_version"` // set by Open
	Run           string            `json:"run"`
	BaseDigest    [32]byte          `json:"base_digest"` // hash of the base weights
	Dist          string            `json:"dist"`        // perturbation distribution (zo.Dist.String)
	Eps           float64           `json:"eps"`
	LR            float64           `json:"lr"`
	LRWarmup      uint64            `json:"lr_warmup,omitempty"` // zo.Config.Warmup
	LRDecay       uint64            `json:"lr_decay,omitempty"`  // zo.Config.Decay
	Quant         string            `json:"quant"`               // quantisation scheme of updates and weights
	Params        map[string]string `json:"params,omitempty"`
	// Model says where the base model came from (ModelSource). It is a
	// hint for joiners, not a rule: BaseDigest decides, and diff ignores it,
	// so homes made before it existed keep opening.
	Model *ModelSource `json:"model,omitempty"`

	// Admission and bounds (docs/DESIGN.md, "Open runs"). Every rule they
	// set is a pure function of an update (or its signer's key) and the
	// manifest, so every peer admits the same set. Zero values are the
	// unbounded rules of manifests written before they existed.
	GradBound  float64  `json:"grad_bound,omitempty"`  // |ĝ| ≤ GradBound for every admitted update (zo.Admissible)
	MaxSamples uint64   `json:"max_samples,omitempty"` // a machine's sample indices stay below this
	Admission  string   `json:"admission,omitempty"`   // "open" (default) or "closed"
	PowBits    int      `json:"pow_bits,omitempty"`    // open runs: proof of work of a machine's key (p2p.PowBits)
	Admit      []string `json:"admit,omitempty"`       // closed runs: admitted machine ids, 16 hex digits each
}

// Admission modes.
const (
	AdmissionOpen   = "open"
	AdmissionClosed = "closed"
)

// Closed reports whether only the machines in Admit may contribute.
func (m Manifest) Closed() bool { return m.Admission == AdmissionClosed }

// Rules returns the per-update admission rules the manifest fixes.
func (m Manifest) Rules() (zo.Rules, error) {
	r := zo.Rules{GradBound: m.GradBound, MaxSamples: m.MaxSamples}
	switch m.Admission {
	case "", AdmissionOpen:
		if len(m.Admit) > 0 {
			return r, fmt.Errorf("store: manifest: an open run has no admission list")
		}
	case AdmissionClosed:
		r.Admitted = make(map[uint64]bool, len(m.Admit))
		for _, a := range m.Admit {
			id, err := ParseMachine(a)
			if err != nil {
				return r, fmt.Errorf("store: manifest: admit: %w", err)
			}
			r.Admitted[id] = true
		}
	default:
		return r, fmt.Errorf("store: manifest: admission %q (want open or closed)", m.Admission)
	}
	if m.PowBits < 0 || m.PowBits > 64 {
		return r, fmt.Errorf("store: manifest: pow_bits %d (want 0..64)", m.PowBits)
	}
	if !(m.GradBound >= 0) || math.IsInf(m.GradBound, 0) {
		return r, fmt.Errorf("store: manifest: grad_bound %g (want a finite value ≥ 0)", m.GradBound)
	}
	return r, nil
}

// ParseMachine reads a machine id written as 16 hex digits (as status and
// logs print it).
func ParseMachine(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("machine id %q: want 16 hex digits", s)
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("machine id %q: %w", s, err)
	}
	return id, nil
}

// Config returns the engine configuration the manifest fixes.
func (m Manifest) Config() (zo.Config, error) {
	d, err := zo.ParseDist(m.Dist)
	if err != nil {
		return zo.Config{}, fmt.Errorf("store: manifest: %w", err)
	}
	return zo.Config{Run: m.Run, Dist: d, Eps: m.Eps, LR: m.LR, Warmup: m.LRWarmup, Decay: m.LRDecay}, nil
}

// diff names the first field in which m and o differ, or returns "".
// FormatVersion is checked separately, before the manifest is decoded.
func (m Manifest) diff(o Manifest) string {
	switch {
	case m.Run != o.Run:
		return "run"
	case m.BaseDigest != o.BaseDigest:
		return "base_digest"
	case m.Dist != o.Dist:
		return "dist"
	case math.Float64bits(m.Eps) != math.Float64bits(o.Eps):
		return "eps"
	case math.Float64bits(m.LR) != math.Float64bits(o.LR):
		return "lr"
	case m.LRWarmup != o.LRWarmup || m.LRDecay != o.LRDecay:
		return "lr schedule"
	case m.Quant != o.Quant:
		return "quant"
	case !maps.Equal(m.Params, o.Params):
		return "params"
	case math.Float64bits(m.GradBound) != math.Float64bits(o.GradBound):
		return "grad_bound"
	case m.MaxSamples != o.MaxSamples:
		return "max_samples"
	case m.Admission != o.Admission || m.PowBits != o.PowBits || !slices.Equal(m.Admit, o.Admit):
		return "admission"
	}
	return ""
}

func encodeManifest(m Manifest) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("store: encode manifest: %w", err)
	}
	return b, nil
}

func decodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	return m, nil
}
