package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

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
//
// A manifest travels and is stored in one canonical serialisation
// (Canonical, docs/PROTOCOL.md §9): the bytes a daemon serves to joiners, the
// bytes of the home's manifest.json and of the store's copy are the same, so
// peers can compare manifests byte for byte.
type Manifest struct {
	FormatVersion int     `json:"format_version"` // ManifestVersion once canonical; 0 in homes written before it
	Run           string  `json:"run"`
	BaseDigest    Digest  `json:"base_digest"` // weights hash (PROTOCOL.md §7) of the base weights
	Dist          string  `json:"dist"`        // perturbation distribution (zo.Dist.String)
	Eps           float64 `json:"eps"`
	LR            float64 `json:"lr"`
	LRWarmup      uint64  `json:"lr_warmup,omitempty"` // zo.Config.Warmup
	LRDecay       uint64  `json:"lr_decay,omitempty"`  // zo.Config.Decay
	// Pool is the run's pool of seeds K (zo.Config.Pool, docs/PROTOCOL.md
	// §12); absent (0): every update perturbs along its own seed.
	Pool   uint32            `json:"pool,omitempty"`
	Quant  string            `json:"quant"` // quantisation scheme of updates and weights
	Params map[string]string `json:"params,omitempty"`

	// PoolChoices makes a pool run FedKSeed-Pro with that many candidate
	// slots per update (zo.Config.PoolChoices, docs/PROTOCOL.md §12.1);
	// absent (0): the uniform rule.
	PoolChoices uint32 `json:"pool_choices,omitempty"`

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

	// Data, when set, declares the run's training data public
	// (docs/PROTOCOL.md §11): any peer holding records of this digest
	// rebuilds any update's minibatch, so batches carry their basis and
	// peers re-verify each other. Nil in private-data runs.
	Data *PublicData `json:"data,omitempty"`
	// Estimator refines MeZO's perturbation (zo.Estimator, docs/PROTOCOL.md
	// §3.1); absent or empty: MeZO, as in manifests written before it.
	Estimator *EstimatorSpec `json:"estimator,omitempty"`
}

// PublicData is a public-data run's dataset and verification rule.
type PublicData struct {
	Digest    Digest  `json:"digest"`     // dataset.Digest of the training records, in order
	BatchSize int     `json:"batch_size"` // records per projected gradient: sample k of machine m reads positions k·B … k·B+B−1 of its order
	Tolerance float64 `json:"tolerance"`  // τ: a claim is wrong when it misses the recomputed value by more than one step + τ (PROTOCOL.md §11.3)
}

// dataKeys are the members of the manifest's data.
var dataKeys = []string{"batch_size", "digest", "tolerance"}

// check validates a public-data declaration.
func (p *PublicData) check() error {
	if p.BatchSize < 1 || p.BatchSize >= maxExactInt {
		return fmt.Errorf("store: manifest: data.batch_size %d (want ≥ 1)", p.BatchSize)
	}
	if !(p.Tolerance > 0) || math.IsInf(p.Tolerance, 0) {
		return fmt.Errorf("store: manifest: data.tolerance %g (want a finite value > 0)", p.Tolerance)
	}
	return nil

}

// EstimatorSpec is the manifest's estimator member.
type EstimatorSpec struct {
	Parts int            `json:"parts,omitempty"` // zo.Estimator.Parts
	Scale map[string]int `json:"scale,omitempty"` // zo.Estimator.Scale: tensor name → k (factor 2^k)
	// OneSided is zo.Estimator.OneSided, a producer rule (forward
	// differences with a shared base); refused with public data.
	OneSided int `json:"onesided,omitempty"`
}

// isZero reports an absent or empty estimator (MeZO).
func (e *EstimatorSpec) isZero() bool {
	return e == nil || e.Parts == 0 && len(e.scale()) == 0 && e.OneSided == 0
}

// scale is Scale without its zero entries (factor 1, the default).
func (e *EstimatorSpec) scale() map[string]int {
	if e == nil {
		return nil
	}
	var out map[string]int
	for k, v := range e.Scale {
		if v != 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[k] = v
		}
	}
	return out
}

// estimator returns the spec as the engine's Estimator.
func (e *EstimatorSpec) estimator() zo.Estimator {
	if e.isZero() {
		return zo.Estimator{}
	}
	return zo.Estimator{Parts: e.Parts, Scale: e.scale(), OneSided: e.OneSided}
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
	r := zo.Rules{GradBound: m.GradBound, MaxSamples: m.MaxSamples, PoolChoices: m.PoolChoices}
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
	if m.Data != nil {
		if err := m.Data.check(); err != nil {
			return r, err
		}
		r.NeedBasis = true
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
	if m.Pool > zo.MaxPool {
		return zo.Config{}, fmt.Errorf("store: manifest: pool of %d seeds (at most %d)", m.Pool, zo.MaxPool)
	}
	if m.Data != nil && m.Estimator.estimator().OneSided != 0 {
		// Public-data peers re-verify an update by recomputing it two-sided
		// on its own mini-batch (§11): a one-sided producer would fail that.
		return zo.Config{}, fmt.Errorf("store: manifest: estimator onesided with public data (peers re-verify updates two-sided) is not supported")
	}
	c := zo.Config{Run: m.Run, Dist: d, Eps: m.Eps, LR: m.LR, Warmup: m.LRWarmup, Decay: m.LRDecay, Pool: m.Pool, PoolChoices: m.PoolChoices, Estimator: m.Estimator.estimator()}
	if err := c.Validate(); err != nil {
		return zo.Config{}, fmt.Errorf("store: manifest: %w", err)
	}
	return c, nil
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
	case m.Pool != o.Pool:
		return "pool"
	case m.PoolChoices != o.PoolChoices:
		return "pool_choices"
	case !maps.Equal(m.Params, o.Params):
		return "params"
	case math.Float64bits(m.GradBound) != math.Float64bits(o.GradBound):
		return "grad_bound"
	case m.MaxSamples != o.MaxSamples:
		return "max_samples"
	case m.Admission != o.Admission || m.PowBits != o.PowBits || !slices.Equal(m.Admit, o.Admit):
		return "admission"
	case (m.Data == nil) != (o.Data == nil) || m.Data != nil && (m.Data.Digest != o.Data.Digest || m.Data.BatchSize != o.Data.BatchSize ||
		math.Float64bits(m.Data.Tolerance) != math.Float64bits(o.Data.Tolerance)):
		return "data"
	case m.Estimator.estimator().Parts != o.Estimator.estimator().Parts || !maps.Equal(m.Estimator.estimator().Scale, o.Estimator.estimator().Scale) ||
		m.Estimator.estimator().OneSided != o.Estimator.estimator().OneSided:
		return "estimator"
	}
	return ""
}

func encodeManifest(m Manifest) ([]byte, error) { return m.Canonical() }

func decodeManifest(b []byte) (Manifest, error) {
	m, err := ParseManifest(b)
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m, nil
}

// ManifestVersion is the manifest format this build writes (the manifest's
// format_version): the schema and canonical serialisation of
// docs/PROTOCOL.md §9. Manifests written before it carry 0 (or 1, the store
// format, in a store's own copy) and the same fields; they are read as this
// version. Any other version is refused.
const ManifestVersion = 1

// Digest is a 32-byte hash. Its JSON form is 64 lower-case hex digits; an
// array of 32 numbers (how manifests were written before format 1 was made
// canonical) is read too.
type Digest [32]byte

// MarshalJSON writes d as a hex string.
func (d Digest) MarshalJSON() ([]byte, error) {
	return []byte(`"` + hex.EncodeToString(d[:]) + `"`), nil
}

// UnmarshalJSON reads a hex string, or the older array of 32 numbers.
func (d *Digest) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if len(s) != 64 || s != strings.ToLower(s) {
			return fmt.Errorf("digest %q: want 64 lower-case hex digits", s)
		}
		_, err := hex.Decode(d[:], []byte(s))
		return err
	}
	var a [32]byte
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 32 {
		return fmt.Errorf("digest %s: want 64 hex digits", b)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	*d = a
	return nil
}

// manifestKeys are the manifest's members, in the canonical (sorted) order.
var manifestKeys = []string{"admission", "admit", "base_digest", "data", "dist", "eps", "estimator", "format_version", "grad_bound",
	"lr", "lr_decay", "lr_warmup", "max_samples", "model", "params", "pool", "pool_choices", "pow_bits", "quant", "run"}

// estimatorKeys are the members of the manifest's estimator (EstimatorSpec).
var estimatorKeys = []string{"onesided", "parts", "scale"}

// modelKeys are the members of the manifest's model source (ModelSource).
var modelKeys = []string{"embedded", "name", "path", "revision", "safetensors_sha256"}

// ErrManifestFormat reports bytes that are not a manifest this build reads.
var ErrManifestFormat = errors.New("store: not a valid run manifest")

// maxExactInt is 2^53: integers below it are exact in binary64, so every
// JSON implementation reads them alike (RFC 8785 needs that of integers).
const maxExactInt = 1 << 53

// Canonical is the one serialisation of m (docs/PROTOCOL.md §9): the RFC 8785
// JSON Canonicalization Scheme of the object whose members are the manifest's
// fields, format_version set to ManifestVersion, the optional members
// (lr_warmup, lr_decay, params, grad_bound, max_samples, admission, pow_bits,
// admit, pool) omitted when zero or empty. Members are sorted by key, there is no
// whitespace, strings are UTF-8 with only '"', '\\' and control characters
// escaped, and binary64 numbers are written as ECMAScript writes them
// (shortest round-trip digits). It fails on a value with no canonical form:
// a non-finite number, an integer ≥ 2^53, a string that is not UTF-8.
func (m Manifest) Canonical() ([]byte, error) {
	var b []byte
	var errs []error
	member := func(key string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendJSONString(b, key)
		b = append(b, ':')
	}
	str := func(key, v string, omit bool) {
		if omit && v == "" {
			return
		}
		if !utf8.ValidString(v) {
			errs = append(errs, fmt.Errorf("%s is not UTF-8", key))
		}
		member(key)
		b = appendJSONString(b, v)
	}
	num := func(key string, v float64, omit bool) {
		if omit && v == 0 {
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("%s is %g", key, v))
			v = 0
		}
		member(key)
		b = appendJSONNumber(b, v)
	}
	integer := func(key string, v uint64, omit bool) {
		if omit && v == 0 {
			return
		}
		if v >= maxExactInt {
			errs = append(errs, fmt.Errorf("%s %d is not below 2^53", key, v))
		}
		member(key)
		b = strconv.AppendUint(b, v, 10)
	}
	b = append(b, '{')
	str("admission", m.Admission, true)
	if len(m.Admit) > 0 {
		member("admit")
		b = append(b, '[')
		for i, a := range m.Admit {
			if i > 0 {
				b = append(b, ',')
			}
			if !utf8.ValidString(a) {
				errs = append(errs, errors.New("admit is not UTF-8"))
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	member("base_digest")
	b = append(b, '"')
	b = hex.AppendEncode(b, m.BaseDigest[:])
	b = append(b, '"')
	if d := m.Data; d != nil {
		member("data")
		outer := b
		b = []byte{'{'}
		integer("batch_size", uint64(max(d.BatchSize, 0)), false)
		member("digest")
		b = append(b, '"')
		b = hex.AppendEncode(b, d.Digest[:])
		b = append(b, '"')
		num("tolerance", d.Tolerance, false)
		b = append(outer, append(b, '}')...)
	}
	str("dist", m.Dist, false)
	num("eps", m.Eps, false)
	if est := m.Estimator; !est.isZero() {
		member("estimator")
		outer := b
		b = []byte{'{'}
		if est.Parts < 0 || est.OneSided < 0 {
			errs = append(errs, fmt.Errorf("estimator parts %d onesided %d", est.Parts, est.OneSided))
		}
		integer("onesided", uint64(max(est.OneSided, 0)), true)
		integer("parts", uint64(max(est.Parts, 0)), true)
		if sc := est.scale(); len(sc) > 0 {
			member("scale")
			keys := slices.Collect(maps.Keys(sc))
			slices.SortFunc(keys, compareUTF16)
			b = append(b, '{')
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				if !utf8.ValidString(k) {
					errs = append(errs, fmt.Errorf("estimator scale %q is not UTF-8", k))
				}
				b = appendJSONString(b, k)
				b = append(b, ':')
				b = strconv.AppendInt(b, int64(sc[k]), 10)
			}
			b = append(b, '}')
		}
		b = append(outer, append(b, '}')...)
	}
	integer("format_version", ManifestVersion, false)
	num("grad_bound", m.GradBound, true)
	num("lr", m.LR, false)
	integer("lr_decay", m.LRDecay, true)
	integer("lr_warmup", m.LRWarmup, true)
	integer("max_samples", m.MaxSamples, true)
	if src := m.Model; src != nil && *src != (ModelSource{}) {
		member("model")
		outer := b
		b = []byte{'{'}
		if src.Embedded {
			member("embedded")
			b = append(b, "true"...)
		}
		str("name", src.Name, true)
		str("path", src.Path, true)
		str("revision", src.Revision, true)
		str("safetensors_sha256", src.SHA256, true)
		b = append(outer, append(b, '}')...)
	}
	if len(m.Params) > 0 {
		member("params")
		keys := slices.Collect(maps.Keys(m.Params))
		slices.SortFunc(keys, compareUTF16)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			if !utf8.ValidString(k) || !utf8.ValidString(m.Params[k]) {
				errs = append(errs, fmt.Errorf("params %q is not UTF-8", k))
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, m.Params[k])
		}
		b = append(b, '}')
	}
	if m.PowBits < 0 {
		errs = append(errs, fmt.Errorf("pow_bits %d", m.PowBits))
	}
	integer("pool", uint64(m.Pool), true)
	integer("pool_choices", uint64(m.PoolChoices), true)
	integer("pow_bits", uint64(max(m.PowBits, 0)), true)
	str("quant", m.Quant, false)
	str("run", m.Run, false)
	b = append(b, '}')
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrManifestFormat, errors.Join(errs...))
	}
	return b, nil
}

// CanonicalDigest is SHA-256 of the canonical serialisation: the manifest's
// identity, as status and logs print it.
func (m Manifest) CanonicalDigest() ([32]byte, error) {
	b, err := m.Canonical()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// ParseManifest reads a manifest in any JSON layout (the canonical form,
// indented files of older homes, base_digest as hex or as the older array).
// It is strict where leniency could make two peers read different runs:
// members must be spelled exactly (no case folding), appear once, and be
// known to this build (a member it does not know could change the weights);
// format_version must be 0 (older homes) or ManifestVersion. The result's
// FormatVersion is ManifestVersion.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return m, fmt.Errorf("%w: %v", ErrManifestFormat, err)
	}
	if _, err := dec.Token(); err == nil {
		return m, fmt.Errorf("%w: trailing data", ErrManifestFormat)
	}
	if err := checkMembers(b); err != nil {
		return m, err
	}
	for k := range obj {
		if _, ok := slices.BinarySearch(manifestKeys, k); !ok {
			return m, fmt.Errorf("%w: unknown member %q (a newer manifest format? upgrade zopeer)", ErrManifestFormat, k)
		}
	}
	if raw, ok := obj["model"]; ok {
		var src map[string]json.RawMessage
		if err := json.Unmarshal(raw, &src); err != nil {
			return m, fmt.Errorf("%w: model: %v", ErrManifestFormat, err)
		}
		for k := range src {
			if !slices.Contains(modelKeys, k) {
				return m, fmt.Errorf("%w: unknown member %q of model", ErrManifestFormat, k)
			}
		}
	}
	if raw, ok := obj["data"]; ok {
		var d map[string]json.RawMessage
		if err := json.Unmarshal(raw, &d); err != nil {
			return m, fmt.Errorf("%w: data: %v", ErrManifestFormat, err)
		}
		for _, k := range dataKeys {
			if _, ok := d[k]; !ok {
				return m, fmt.Errorf("%w: data lacks %q", ErrManifestFormat, k)
			}
		}
		if len(d) != len(dataKeys) {
			return m, fmt.Errorf("%w: data has members other than %v", ErrManifestFormat, dataKeys)
		}
	}
	if raw, ok := obj["estimator"]; ok {
		var est map[string]json.RawMessage
		if err := json.Unmarshal(raw, &est); err != nil {
			return m, fmt.Errorf("%w: estimator: %v", ErrManifestFormat, err)
		}
		for k := range est {
			if !slices.Contains(estimatorKeys, k) {
				return m, fmt.Errorf("%w: unknown member %q of estimator (a newer manifest format? upgrade zopeer)", ErrManifestFormat, k)
			}
		}
		if err := checkMembers(raw); err != nil {
			return m, fmt.Errorf("estimator: %w", err)
		}
		if sc, ok := est["scale"]; ok {
			if err := checkMembers(sc); err != nil {
				return m, fmt.Errorf("estimator scale: %w", err)
			}
		}
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrManifestFormat, err)
	}
	if m.Estimator.isZero() {
		m.Estimator = nil
	} else {
		m.Estimator.Scale = m.Estimator.scale()
	}
	switch m.FormatVersion {
	case 0, ManifestVersion:
		m.FormatVersion = ManifestVersion
	default:
		return Manifest{}, fmt.Errorf("%w: format_version %d, this build reads %d", ErrManifestFormat, m.FormatVersion, ManifestVersion)
	}
	if len(m.Params) == 0 {
		m.Params = nil
	}
	if len(m.Admit) == 0 {
		m.Admit = nil
	}
	return m, nil
}

// checkMembers refuses a top-level object with a repeated member.
func checkMembers(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return fmt.Errorf("%w: %v", ErrManifestFormat, err)
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrManifestFormat, err)
		}
		k, _ := t.(string)
		if seen[k] {
			return fmt.Errorf("%w: member %q appears twice", ErrManifestFormat, k)
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("%w: %v", ErrManifestFormat, err)
		}
	}
	return nil
}

// compareUTF16 orders strings by their UTF-16 code units (RFC 8785 §3.2.3).
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

// appendJSONString writes s as JSON.stringify does: '"' and '\\' escaped,
// \b \f \n \r \t for those controls, \u00xx (lower-case hex) for the other
// controls below U+0020, everything else as its UTF-8 bytes.
func appendJSONString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendJSONNumber writes a finite binary64 as ECMAScript's Number::toString
// (RFC 8785 §3.2.2.3): the shortest digits that round-trip, in plain notation
// for 1e-6 ≤ |v| < 1e21 and as d.ddde±x otherwise; −0 is written 0.
func appendJSONNumber(b []byte, v float64) []byte {
	if v == 0 {
		return append(b, '0')
	}
	abs := math.Abs(v)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	n := len(b)
	b = strconv.AppendFloat(b, v, 'e', -1, 64)
	// Go writes e-07 / e+21; ECMAScript writes e-7 / e+21.
	if m := len(b); m-n >= 4 && b[m-4] == 'e' && b[m-2] == '0' {
		b[m-2] = b[m-1]
		b = b[:m-1]
	}
	return b
}
