package model

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zopeer/zopeer/model/safetensors"
)

func load(t *testing.T, name string) *Model {
	t.Helper()
	m, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func paramHash(m *Model) [32]byte {
	h := sha256.New()
	for _, p := range m.Params() {
		binary.Write(h, binary.LittleEndian, p.Data)
	}
	return [32]byte(h.Sum(nil))
}

// The forward pass reads the Params slices themselves: rewriting them in
// place (as the zo engine does) changes the next pass, with cached graphs,
// and no pass writes to them.
func TestReadsWeightsInPlace(t *testing.T) {
	m := load(t, "llama")
	other := load(t, "llama-bf16-sharded")
	e := readExpected(t, filepath.Join("testdata", "llama-bf16-sharded"))
	before := paramHash(m)
	if _, _, err := m.Loss(e.batch()); err != nil { // builds and caches the graph
		t.Fatal(err)
	}
	if paramHash(m) != before {
		t.Fatal("forward pass modified the weights")
	}
	for i, p := range m.Params() {
		copy(p.Data, other.Params()[i].Data)
	}
	loss, _, err := m.Loss(e.batch())
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(loss-e.Loss) > 1e-5 {
		t.Errorf("after rewriting the weights: loss %.7f, want %.7f", loss, e.Loss)
	}
}

func TestParams(t *testing.T) {
	m := load(t, "gpt2")
	c := m.Config()
	n := 0
	for _, p := range m.Params() {
		size := 1
		for _, d := range p.Shape {
			size *= d
		}
		if size != len(p.Data) || !p.Trainable {
			t.Errorf("%s: shape %v, %d elements", p.Name, p.Shape, len(p.Data))
		}
		n += size
	}
	d := c.Hidden
	want := c.Vocab*d + c.MaxPos*d + c.Layers*(12*d*d+13*d) + 2*d
	if n != want || m.Params()[0].Name != "transformer.wte.weight" {
		t.Errorf("%d parameters, want %d; first %s", n, want, m.Params()[0].Name)
	}
}

// Passes split at MaxTokens give the same loss; a sequence longer than
// MaxTokens gets a pass of its own.
func TestLossSplitsBatch(t *testing.T) {
	m := load(t, "gpt2")
	e := readExpected(t, filepath.Join("testdata", "gpt2"))
	for _, limit := range []int{1, 10, 16, 1000} {
		m.MaxTokens = limit
		loss, n, err := m.Loss(e.batch())
		if err != nil {
			t.Fatal(err)
		}
		if n != e.NTokens || math.Abs(loss-e.Loss) > 1e-5 {
			t.Errorf("MaxTokens %d: loss %.7f over %d, want %.7f over %d", limit, loss, n, e.Loss, e.NTokens)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, c := range []struct {
		fixture string
		dtype   safetensors.DType
	}{{"gpt2", safetensors.F32}, {"llama", safetensors.F32}, {"qwen2", safetensors.F32},
		{"gpt2-f16", safetensors.F16}, {"llama-bf16-sharded", safetensors.BF16}} {
		t.Run(c.fixture, func(t *testing.T) {
			m := load(t, c.fixture)
			if m.DType() != c.dtype {
				t.Errorf("DType = %s, want %s", m.DType(), c.dtype)
			}
			dir := t.TempDir()
			if err := m.Save(dir, m.DType()); err != nil {
				t.Fatal(err)
			}
			m2, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if paramHash(m) != paramHash(m2) {
				t.Error("weights differ after save and load")
			}
			e := readExpected(t, filepath.Join("testdata", c.fixture))
			l1, _, err1 := m.Loss(e.batch())
			l2, _, err2 := m2.Loss(e.batch())
			if err1 != nil || err2 != nil || l1 != l2 {
				t.Errorf("loss %v (%v) before, %v (%v) after", l1, err1, l2, err2)
			}
		})
	}
}

// copyDir copies a fixture so a test can break it.
func copyDir(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", name)
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// rewrite replaces model.safetensors with the fixture's tensors after edit.
func rewrite(t *testing.T, dir string, d safetensors.DType, edit func([]safetensors.Tensor) []safetensors.Tensor) {
	t.Helper()
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, p := range m.Params() {
		ts = append(ts, safetensors.Tensor{Name: p.Name, Shape: p.Shape, Data: p.Data})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), d, edit(ts), nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"no dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") }, "config.json"},
		{"bad config", func(t *testing.T) string {
			d := copyDir(t, "gpt2")
			os.WriteFile(filepath.Join(d, "config.json"), []byte("{"), 0o644)
			return d
		}, "bad config.json"},
		{"unknown architecture", func(t *testing.T) string {
			d := copyDir(t, "gpt2")
			os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"model_type":"mamba","architectures":["MambaForCausalLM"]}`), 0o644)
			return d
		}, "unknown architecture"},
		{"rope scaling", func(t *testing.T) string {
			d := copyDir(t, "llama")
			b, _ := os.ReadFile(filepath.Join(d, "config.json"))
			b = []byte(strings.Replace(string(b), "{", `{"rope_scaling":{"rope_type":"llama3","factor":8},`, 1))
			os.WriteFile(filepath.Join(d, "config.json"), b, 0o644)
			return d
		}, "rope_scaling"},
		{"no weights", func(t *testing.T) string {
			d := copyDir(t, "gpt2")
			os.Remove(filepath.Join(d, "model.safetensors"))
			return d
		}, "neither model.safetensors"},
		{"truncated", func(t *testing.T) string {
			d := copyDir(t, "gpt2")
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
			return d
		}, "truncated"},
		{"missing shard", func(t *testing.T) string {
			d := copyDir(t, "llama-bf16-sharded")
			os.Remove(filepath.Join(d, "model-00002-of-00002.safetensors"))
			return d
		}, "no such file"},
		{"shard outside dir", func(t *testing.T) string {
			d := copyDir(t, "llama-bf16-sharded")
			os.WriteFile(filepath.Join(d, "model.safetensors.index.json"), []byte(`{"weight_map":{"a":"../x.safetensors"}}`), 0o644)
			return d
		}, "outside the directory"},
		{"missing tensor", func(t *testing.T) string {
			d := copyDir(t, "gpt2")
			rewrite(t, d, safetensors.F32, func(ts []safetensors.Tensor) []safetensors.Tensor { return ts[1:] })
			return d
		}, "missing tensor"},
		{"wrong shape", func(t *testing.T) string {
			d := copyDir(t, "llama")
			rewrite(t, d, safetensors.F32, func(ts []safetensors.Tensor) []safetensors.Tensor {
				for i, x := range ts {
					if x.Name == "model.layers.0.self_attn.k_proj.weight" { // [16, 32]
						ts[i].Shape = []int{x.Shape[1], x.Shape[0]}
					}
				}
				return ts
			})
			return d
		}, "has shape"},
		{"wrong dtype", func(t *testing.T) string {
			d := copyDir(t, "gpt2")
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			// Same size, integer type: F32 -> I32 in the first tensor's header entry.
			s := strings.Replace(string(b), `"dtype":"F32"`, `"dtype":"I32"`, 1)
			os.WriteFile(p, []byte(s), 0o644)
			return d
		}, "not a float type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Load(c.setup(t))
			if err == nil {
				t.Fatalf("loaded %v", m.Config().Arch)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "model: ") && !strings.HasPrefix(msg, "safetensors: ") {
				t.Errorf("error does not name its origin: %v", err)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	m := load(t, "gpt2")
	long := make([]int, m.Config().MaxPos+1)
	for _, c := range []struct {
		name  string
		batch []Sequence
		want  string
	}{
		{"empty batch", nil, "no target tokens"},
		{"empty sequence", []Sequence{{}}, "empty"},
		{"no targets", []Sequence{{Tokens: []int{1}}}, "no target tokens"},
		{"token range", []Sequence{{Tokens: []int{1, 99999}}}, "outside the vocabulary"},
		{"negative token", []Sequence{{Tokens: []int{1, -1}}}, "outside the vocabulary"},
		{"too long", []Sequence{{Tokens: long}}, "context"},
		{"mask length", []Sequence{{Tokens: []int{1, 2}, Mask: []bool{true}}}, "mask"},
	} {
		_, _, err := m.Loss(c.batch)
		if err == nil || !strings.HasPrefix(err.Error(), "model: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := m.Logits(nil); err == nil {
		t.Error("Logits(nil) succeeded")
	}
}

// Causality and padding: a prefix's logits equal the first rows of the full
// sequence's, whichever buckets the two lengths fall in.
func TestPrefixLogits(t *testing.T) {
	for _, name := range []string{"gpt2", "llama"} {
		m := load(t, name)
		v := m.Config().Vocab
		tokens := make([]int, 23)
		for i := range tokens {
			tokens[i] = (i * 7) % v
		}
		full, err := m.Logits(tokens)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []int{1, 16, 17} {
			part, err := m.Logits(tokens[:k])
			if err != nil {
				t.Fatal(err)
			}
			for i := range part {
				if d := math.Abs(float64(part[i] - full[i])); d > 1e-5 {
					t.Fatalf("%s: prefix %d: logit %d differs by %g", name, k, i, d)
				}
			}
		}
	}
}

// The original OpenAI GPT-2 conversions name tensors without "transformer.".
func TestGPT2UnprefixedNames(t *testing.T) {
	d := copyDir(t, "gpt2")
	rewrite(t, d, safetensors.F32, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i := range ts {
			ts[i].Name = strings.TrimPrefix(ts[i].Name, "transformer.")
		}
		return ts
	})
	a, b := load(t, "gpt2"), func() *Model {
		m, err := Load(d)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}()
	if paramHash(a) != paramHash(b) {
		t.Error("weights differ")
	}
}
