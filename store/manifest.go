package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"

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
