// Package model runs causal language models (GPT-2 and the Llama family,
// which covers SmolLM and Qwen2) loaded from Hugging Face checkpoints, and
// computes the mean next-token cross-entropy that zeroth-order training
// needs. A forward pass is plain Go over reused buffers (exec.go), with
// OpenBLAS's SGEMM for the matrix products (model/blas).
//
// The weights live in float32 slices that Params exposes and every forward
// pass reads in place, or, after SetSource, in the caller's own storage (the
// zo engine's int32 weights), derived tensor by tensor just before use.
package model

import (
	"errors"
	"fmt"
	"sync"

	"github.com/zopeer/zopeer/model/safetensors"
)

// Param is one parameter tensor. Its fields match zo.TensorSpec, so
// zo.TensorSpec(p) converts it.
type Param struct {
	Name      string
	Shape     []int
	Data      []float32
	Trainable bool
}

// Sequence is one training example. A token is a target (its prediction
// counts in the loss) when its index is at least max(1, LossFrom) and, if
// Mask is set, Mask at its index is true.
type Sequence struct {
	Tokens   []int
	Mask     []bool
	LossFrom int
}

// DefaultMaxTokens bounds the rows of one forward pass; a batch with more
// tokens runs as several passes. The logits alone take rows·vocab·4 bytes
// (512 rows of GPT-2: 103 MB).
const DefaultMaxTokens = 512

// Model is a loaded causal language model. Its methods are safe for
// concurrent use; forward passes run one at a time.
type Model struct {
	cfg    *Config
	params []Param
	byName map[string]*Param
	dtype  safetensors.DType

	// MaxTokens overrides DefaultMaxTokens when positive.
	MaxTokens int

	mu        sync.Mutex
	src       ViewSource     // nil: passes read the Params' Data
	idx       map[string]int // Params index by name
	sizes     []int          // elements per parameter
	maxMatrix int            // elements of the largest matrix but the embeddings
	lay       layout
	ex        exec
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return *m.cfg }

// DType is the element type of the checkpoint the model was loaded from.
func (m *Model) DType() safetensors.DType { return m.dtype }

// Params returns the parameter tensors in a fixed order, all trainable. The
// Data slices are the ones the forward pass reads.
func (m *Model) Params() []Param { return m.params }

// newModel allocates zeroed parameters for cfg.
func newModel(cfg *Config) *Model {
	m := &Model{cfg: cfg, byName: map[string]*Param{}, idx: map[string]int{}, dtype: safetensors.F32}
	for _, s := range cfg.tensors() {
		m.params = append(m.params, Param{Name: s.name, Shape: s.shape, Data: make([]float32, s.elems()), Trainable: true})
		m.sizes = append(m.sizes, s.elems())
		if len(s.shape) == 2 && s.shape[0] != cfg.Vocab && s.shape[0] != cfg.MaxPos {
			m.maxMatrix = max(m.maxMatrix, s.elems())
		}
	}
	for i := range m.params {
		m.byName[m.params[i].Name] = &m.params[i]
		m.idx[m.params[i].Name] = i
	}
	m.makeLayout()
	return m
}

type tensorSpec struct {
	name  string
	shape []int
}

func (s tensorSpec) elems() int {
	n := 1
	for _, d := range s.shape {
		n *= d
	}
	return n
}

// tensors lists the parameters under their Hugging Face names, in order.
func (c *Config) tensors() []tensorSpec {
	var ts []tensorSpec
	add := func(name string, shape ...int) { ts = append(ts, tensorSpec{name, shape}) }
	d := c.Hidden
	switch c.Arch {
	case GPT2:
		add("transformer.wte.weight", c.Vocab, d)
		add("transformer.wpe.weight", c.MaxPos, d)
		for l := range c.Layers {
			p := fmt.Sprintf("transformer.h.%d.", l)
			add(p+"ln_1.weight", d)
			add(p+"ln_1.bias", d)
			add(p+"attn.c_attn.weight", d, 3*d)
			add(p+"attn.c_attn.bias", 3*d)
			add(p+"attn.c_proj.weight", d, d)
			add(p+"attn.c_proj.bias", d)
			add(p+"ln_2.weight", d)
			add(p+"ln_2.bias", d)
			add(p+"mlp.c_fc.weight", d, c.FF)
			add(p+"mlp.c_fc.bias", c.FF)
			add(p+"mlp.c_proj.weight", c.FF, d)
			add(p+"mlp.c_proj.bias", d)
		}
		add("transformer.ln_f.weight", d)
		add("transformer.ln_f.bias", d)
	case Llama:
		q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
		add("model.embed_tokens.weight", c.Vocab, d)
		for l := range c.Layers {
			p := fmt.Sprintf("model.layers.%d.", l)
			add(p+"input_layernorm.weight", d)
			for _, pr := range []struct {
				name    string
				out, in int
				hasBias bool
			}{
				{"self_attn.q_proj", q, d, c.QKVBias},
				{"self_attn.k_proj", kv, d, c.QKVBias},
				{"self_attn.v_proj", kv, d, c.QKVBias},
				{"self_attn.o_proj", d, q, c.OBias},
			} {
				add(p+pr.name+".weight", pr.out, pr.in)
				if pr.hasBias {
					add(p+pr.name+".bias", pr.out)
				}
			}
			add(p+"post_attention_layernorm.weight", d)
			for _, pr := range []struct {
				name    string
				out, in int
			}{{"mlp.gate_proj", c.FF, d}, {"mlp.up_proj", c.FF, d}, {"mlp.down_proj", d, c.FF}} {
				add(p+pr.name+".weight", pr.out, pr.in)
				if c.MLPBias {
					add(p+pr.name+".bias", pr.out)
				}
			}
		}
		add("model.norm.weight", d)
		if !c.TiedHead {
			add("lm_head.weight", c.Vocab, d)
		}
	}
	return ts
}

// Logits runs one sequence and returns its logits, row-major
// [len(tokens)][vocab].
func (m *Model) Logits(tokens []int) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, errors.New("model: no tokens")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seqs := []Sequence{{Tokens: tokens}}
	if err := m.check(seqs); err != nil {
		return nil, err
	}
	rows := m.ex.pack(seqs)
	m.run(rows)
	out := make([]float32, rows*m.cfg.Vocab)
	m.logitsInto(out, m.ex.h, rows)
	return out, nil
}

// Loss returns the mean next-token cross-entropy (nats) over the target
// tokens of the batch, and how many there were.
func (m *Model) Loss(batch []Sequence) (float64, int, error) {
	total, n := 0.0, 0
	for i, s := range batch {
		if len(s.Tokens) == 0 {
			return 0, 0, fmt.Errorf("model: sequence %d is empty", i)
		}
		if s.Mask != nil && len(s.Mask) != len(s.Tokens) {
			return 0, 0, fmt.Errorf("model: sequence %d: %d mask entries for %d tokens", i, len(s.Mask), len(s.Tokens))
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.forward(batch, func() {
		sum, cnt := m.crossEntropy()
		total += sum
		n += cnt
	})
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return 0, 0, errors.New("model: batch has no target tokens")
	}
	return total / float64(n), n, nil
}

// check refuses sequences the model cannot run.
func (m *Model) check(batch []Sequence) error {
	for i, s := range batch {
		if len(s.Tokens) > m.cfg.MaxPos {
			return fmt.Errorf("model: sequence %d has %d tokens, the model's context is %d", i, len(s.Tokens), m.cfg.MaxPos)
		}
		for _, t := range s.Tokens {
			if t < 0 || t >= m.cfg.Vocab {
				return fmt.Errorf("model: sequence %d: token %d outside the vocabulary [0, %d)", i, t, m.cfg.Vocab)
			}
		}
	}
	return nil
}

// forward packs the batch into passes of at most MaxTokens rows (a longer
// sequence gets a pass of its own), runs each and calls done after it, with
// the pass's final hidden states in m.ex.h.
func (m *Model) forward(batch []Sequence, done func()) error {
	limit := m.MaxTokens
	if limit <= 0 {
		limit = DefaultMaxTokens
	}
	if err := m.check(batch); err != nil {
		return err
	}
	for lo := 0; lo < len(batch); {
		hi, rows := lo+1, len(batch[lo].Tokens)
		for hi < len(batch) && rows+len(batch[hi].Tokens) <= limit {
			rows += len(batch[hi].Tokens)
			hi++
		}
		m.run(m.ex.pack(batch[lo:hi]))
		done()
		lo = hi
	}
	return nil
}

// Batch binds a mini-batch to a model. Its Loss method satisfies zo.Loss.
type Batch struct {
	Model *Model
	Seqs  []Sequence
}

// Loss is the mean next-token cross-entropy of the batch under the current weights.
func (b Batch) Loss() (float64, error) {
	l, _, err := b.Model.Loss(b.Seqs)
	return l, err
}
