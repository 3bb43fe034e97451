package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

type expected struct {
	Cases []struct {
		Tokens []int     `json:"tokens"`
		Logits []float64 `json:"logits"`
	} `json:"cases"`
	Batch []struct {
		Tokens   []int  `json:"tokens"`
		Mask     []bool `json:"mask"`
		LossFrom int    `json:"loss_from"`
	} `json:"batch"`
	Loss    float64 `json:"loss"`
	NTokens int     `json:"n_tokens"`
}

func readExpected(t *testing.T, dir string) *expected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func (e *expected) batch() []Sequence {
	var b []Sequence
	for _, s := range e.Batch {
		b = append(b, Sequence{Tokens: s.Tokens, Mask: s.Mask, LossFrom: s.LossFrom})
	}
	return b
}

// fixtures are written by testdata/gen_reference.py, an independent numpy
// implementation in float64.
var fixtures = []string{"gpt2", "gpt2-f16", "llama", "llama-bf16-sharded", "qwen2", "llama3-rope"}

func TestMatchesReference(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			e := readExpected(t, dir)
			for _, c := range e.Cases {
				got, err := m.Logits(c.Tokens)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(c.Logits) {
					t.Fatalf("%d logits, want %d", len(got), len(c.Logits))
				}
				worst := 0.0
				for i := range got {
					worst = max(worst, math.Abs(float64(got[i])-c.Logits[i]))
				}
				t.Logf("%d tokens: max |Δlogit| = %.2g", len(c.Tokens), worst)
				if worst > 1e-4 {
					t.Errorf("%d tokens: logits differ from the reference by %g", len(c.Tokens), worst)
				}
			}
			loss, n, err := m.Loss(e.batch())
			if err != nil {
				t.Fatal(err)
			}
			if n != e.NTokens || math.Abs(loss-e.Loss) > 1e-5 {
				t.Errorf("Loss = %.7f over %d tokens, want %.7f over %d", loss, n, e.Loss, e.NTokens)
			}
		})
	}
}
