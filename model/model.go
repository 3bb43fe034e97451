// Package model runs causal language models (GPT-2 and the Llama family,
// which covers SmolLM and Qwen2) loaded from Hugging Face checkpoints, with
// gorgonia as the forward-pass engine, and computes the mean next-token
// cross-entropy that zeroth-order training needs.
//
// The weights live in float32 slices that Params exposes; every forward pass
// reads them in place, so a caller (the zo engine) may rewrite them between
// passes.
package model

import (
	"errors"
	"fmt"
	"math"
	"sync"

	G "gorgonia.org/gorgonia"

	"github.com/zopeer/zopeer/model/blas"
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

// maxGraphs bounds the cached graphs; each holds its activations.
const maxGraphs = 3

// Model is a loaded causal language model. Its methods are safe for
// concurrent use; forward passes run one at a time.
type Model struct {
	cfg    *Config
	params []Param
	byName map[string]*Param
	dtype  safetensors.DType

	// MaxTokens overrides DefaultMaxTokens when positive.
	MaxTokens int

	mu     sync.Mutex
	graphs map[int]*graph
	lru    []int // graph row counts, least recently used first
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
	m := &Model{cfg: cfg, byName: map[string]*Param{}, graphs: map[int]*graph{}, dtype: safetensors.F32}
	for _, s := range cfg.tensors() {
		m.params = append(m.params, Param{Name: s.name, Shape: s.shape, Data: make([]float32, s.elems()), Trainable: true})
	}
	for i := range m.params {
		m.byName[m.params[i].Name] = &m.params[i]
	}
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
	var out []float32
	err := m.forward([]Sequence{{Tokens: tokens}}, func(logits []float32, _ *packed) {
		out = append([]float32(nil), logits[:len(tokens)*m.cfg.Vocab]...)
	})
	return out, err
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
	err := m.forward(batch, func(logits []float32, p *packed) {
		sum, cnt := m.crossEntropy(logits, p)
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

// forward packs the batch into passes of at most MaxTokens rows (a longer
// sequence gets a pass of its own) and calls done with each pass's logits.
func (m *Model) forward(batch []Sequence, done func(logits []float32, p *packed)) error {
	limit := m.MaxTokens
	if limit <= 0 {
		limit = DefaultMaxTokens
	}
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
	for lo := 0; lo < len(batch); {
		hi, rows := lo+1, len(batch[lo].Tokens)
		for hi < len(batch) && rows+len(batch[hi].Tokens) <= limit {
			rows += len(batch[hi].Tokens)
			hi++
		}
		g, err := m.graphFor(bucket(rows))
		if err != nil {
			return err
		}
		g.pack(batch[lo:hi])
		logits, err := g.run()
		if err != nil {
			return err
		}
		done(logits, g.in)
		lo = hi
	}
	return nil
}

// bucket rounds a row count up to 16·2^k or 24·2^k so that few graphs serve
// all batch sizes, wasting at most a third of a pass on padding.
func bucket(n int) int {
	b := 16
	for b < n {
		if b/2*3 >= n {
			return b / 2 * 3
		}
		b *= 2
	}
	return b
}

// crossEntropy sums −log p(target) over the target rows of one pass.
func (m *Model) crossEntropy(logits []float32, p *packed) (float64, int) {
	v := m.cfg.Vocab
	type target struct{ row, tok int }
	var ts []target
	for k, s := range p.segs {
		seq := p.seqs[k]
		for i := max(1, seq.LossFrom); i < s.n; i++ {
			if seq.Mask == nil || seq.Mask[i] {
				ts = append(ts, target{s.start + i - 1, seq.Tokens[i]})
			}
		}
	}
	parts := make([]float64, len(ts))
	parallelRows(len(ts), 10*v, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := logits[ts[i].row*v : (ts[i].row+1)*v]
			mx := row[0]
			for _, x := range row {
				mx = max(mx, x)
			}
			var s float64
			for _, x := range row {
				s += math.Exp(float64(x - mx))
			}
			parts[i] = math.Log(s) + float64(mx) - float64(row[ts[i].tok])
		}
	})
	var sum float64
	for _, x := range parts {
		sum += x
	}
	return sum, len(ts)
}

// graph is a compiled forward pass for a fixed number of rows.
type graph struct {
	g      *G.ExprGraph
	vm     G.VM
	logits *G.Node
	in     *packed
}

func (m *Model) graphFor(rows int) (*graph, error) {
	for i, r := range m.lru {
		if r == rows {
			m.lru = append(append(m.lru[:i:i], m.lru[i+1:]...), rows)
			return m.graphs[rows], nil
		}
	}
	g, err := m.build(rows)
	if err != nil {
		return nil, err
	}
	if len(m.lru) == maxGraphs {
		old := m.lru[0]
		m.graphs[old].vm.Close()
		delete(m.graphs, old)
		m.lru = m.lru[1:]
	}
	m.graphs[rows] = g
	m.lru = append(m.lru, rows)
	return g, nil
}

// pack lays the sequences out as rows; padding rows are token 0 at position 0
// and attend to nothing.
func (g *graph) pack(seqs []Sequence) {
	p := g.in
	clear(p.tokens)
	clear(p.pos)
	p.segs, p.seqs = p.segs[:0], p.seqs[:0]
	r := 0
	for _, s := range seqs {
		p.segs = append(p.segs, seg{r, len(s.Tokens)})
		p.seqs = append(p.seqs, s)
		for i, t := range s.Tokens {
			p.tokens[r+i], p.pos[r+i] = t, i
		}
		r += len(s.Tokens)
	}
}

func (g *graph) run() ([]float32, error) {
	defer g.vm.Reset()
	if err := g.vm.RunAll(); err != nil {
		return nil, fmt.Errorf("model: forward pass: %w", err)
	}
	out, ok := g.logits.Value().Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("model: logits are %T", g.logits.Value().Data())
	}
	return out, nil
}

var useBLAS sync.Once

// build compiles the forward pass for rows packed tokens.
func (m *Model) build(rows int) (gr *graph, err error) {
	useBLAS.Do(func() { G.Use(blas.Impl()) })
	// gorgonia reports some graph errors by panicking; keep them errors.
	defer func() {
		if r := recover(); r != nil {
			gr, err = nil, fmt.Errorf("model: building graph: %v", r)
		}
	}()
	gr = &graph{g: G.NewGraph(), in: &packed{tokens: make([]int, rows), pos: make([]int, rows)}}
	b := &builder{m: m, g: gr.g, rows: rows, in: gr.in}
	switch m.cfg.Arch {
	case GPT2:
		gr.logits, err = b.gpt2()
	case Llama:
		gr.logits, err = b.llama()
	}
	if err != nil {
		return nil, err
	}
	// The graph has no gradient nodes, so the tape machine runs forward only.
	// (gorgonia v0.9.18's ExecuteFwdOnly option is for the lisp machine; the
	// tape machine panics on it.)
	gr.vm = G.NewTapeMachine(gr.g)
	return gr, nil
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
