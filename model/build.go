package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// builder assembles one forward graph. Its methods record the first error
// and turn later calls into no-ops, so the layer code reads like the model.
type builder struct {
	m    *Model
	g    *G.ExprGraph
	rows int
	in   *packed
	err  error
}

// weight is a node whose value is the parameter's own slice: the forward pass
// reads the weights in place, never a copy.
func (b *builder) weight(name string) *G.Node {
	p := b.m.byName[name]
	t := tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(p.Data))
	return G.NewTensor(b.g, tensor.Float32, len(p.Shape), G.WithShape(p.Shape...), G.WithValue(t), G.WithName(name))
}

// weightT is a [out, in] (nn.Linear) weight seen as its [in, out] transpose.
// The view is lazy, so gorgonia's matmul passes a transpose flag to SGEMM
// instead of copying the matrix.
func (b *builder) weightT(name string) *G.Node {
	p := b.m.byName[name]
	t := tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(p.Data))
	if err := t.T(); err != nil && b.err == nil {
		b.err = fmt.Errorf("model: transposing %s: %w", name, err)
	}
	return G.NewMatrix(b.g, tensor.Float32, G.WithShape(p.Shape[1], p.Shape[0]), G.WithValue(t), G.WithName(name+"ᵀ"))
}

func (b *builder) mul(x, w *G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	y, err := G.Mul(x, w)
	if err != nil {
		b.err = fmt.Errorf("model: matmul %v × %v: %w", x.Shape(), w.Shape(), err)
	}
	return y
}

func (b *builder) add(x, y *G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	z, err := G.Add(x, y)
	if err != nil {
		b.err = fmt.Errorf("model: residual add: %w", err)
	}
	return z
}

// kernel adds a custom op producing a [rows, cols] matrix.
func (b *builder) kernel(name string, cols int, run func(out []float32, in [][]float32), operands ...*G.Node) *G.Node {
	if b.err != nil {
		return nil
	}
	n, err := apply(name, tensor.Shape{b.rows, cols}, run, operands...)
	b.err = err
	return n
}

// linear is x·W (+ bias) for a Conv1D weight [in, out] (transposed false)
// or an nn.Linear weight [out, in] (transposed true).
func (b *builder) linear(x *G.Node, name string, transposed, bias bool) *G.Node {
	var w *G.Node
	if transposed {
		w = b.weightT(name + ".weight")
	} else {
		w = b.weight(name + ".weight")
	}
	y := b.mul(x, w)
	if !bias {
		return y
	}
	return b.kernel(name+".bias", w.Shape()[1], func(out []float32, in [][]float32) { addBias(out, in[0], in[1]) }, y, b.weight(name+".bias"))
}

func (b *builder) layerNorm(x *G.Node, name string) *G.Node {
	d, eps := b.m.cfg.Hidden, b.m.cfg.NormEps
	return b.kernel(name, d, func(out []float32, in [][]float32) { normRows(out, in[0], in[1], in[2], d, eps, false) },
		x, b.weight(name+".weight"), b.weight(name+".bias"))
}

func (b *builder) rmsNorm(x *G.Node, name string) *G.Node {
	d, eps := b.m.cfg.Hidden, b.m.cfg.NormEps
	return b.kernel(name, d, func(out []float32, in [][]float32) { normRows(out, in[0], in[1], nil, d, eps, true) },
		x, b.weight(name+".weight"))
}

// embed looks up token embeddings, plus learned position embeddings if given.
func (b *builder) embed(tokens *G.Node, positions *G.Node) *G.Node {
	d, p := b.m.cfg.Hidden, b.in
	run := func(out []float32, in [][]float32) {
		for r, t := range p.tokens {
			o := out[r*d : (r+1)*d]
			copy(o, in[0][t*d:(t+1)*d])
			if len(in) > 1 {
				pe := in[1][p.pos[r]*d : (p.pos[r]+1)*d]
				for i := range o {
					o[i] += pe[i]
				}
			}
		}
	}
	if positions == nil {
		return b.kernel("embed", d, run, tokens)
	}
	return b.kernel("embed", d, run, tokens, positions)
}

func (b *builder) attention(a *attention, qkv ...*G.Node) *G.Node {
	a.in = b.in
	if a.rope != nil {
		a.qr = make([]float32, b.rows*a.heads*a.headDim)
		a.kr = make([]float32, b.rows*a.kvHeads*a.headDim)
	}
	return b.kernel("attention", a.heads*a.headDim, a.run, qkv...)
}

func (b *builder) gpt2() (*G.Node, error) {
	c := b.m.cfg
	x := b.embed(b.weight("transformer.wte.weight"), b.weight("transformer.wpe.weight"))
	for l := range c.Layers {
		p := fmt.Sprintf("transformer.h.%d.", l)
		h := b.layerNorm(x, p+"ln_1")
		qkv := b.linear(h, p+"attn.c_attn", false, true)
		h = b.attention(&attention{heads: c.Heads, kvHeads: c.Heads, headDim: c.HeadDim}, qkv)
		x = b.add(x, b.linear(h, p+"attn.c_proj", false, true))
		h = b.layerNorm(x, p+"ln_2")
		h = b.mul(h, b.weight(p+"mlp.c_fc.weight"))
		h = b.kernel(p+"mlp.gelu", c.FF, func(out []float32, in [][]float32) { geluBias(out, in[0], in[1]) }, h, b.weight(p+"mlp.c_fc.bias"))
		x = b.add(x, b.linear(h, p+"mlp.c_proj", false, true))
	}
	x = b.layerNorm(x, "transformer.ln_f")
	logits := b.mul(x, b.weightT("transformer.wte.weight"))
	return logits, b.err
}

func (b *builder) llama() (*G.Node, error) {
	c := b.m.cfg
	x := b.embed(b.weight("model.embed_tokens.weight"), nil)
	rope := newRope(b.rows, c.HeadDim, c.RopeTheta, c.Llama3Rope)
	for l := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		h := b.rmsNorm(x, p+"input_layernorm")
		q := b.linear(h, p+"self_attn.q_proj", true, c.QKVBias)
		k := b.linear(h, p+"self_attn.k_proj", true, c.QKVBias)
		v := b.linear(h, p+"self_attn.v_proj", true, c.QKVBias)
		h = b.attention(&attention{heads: c.Heads, kvHeads: c.KVHeads, headDim: c.HeadDim, rope: rope}, q, k, v)
		x = b.add(x, b.linear(h, p+"self_attn.o_proj", true, c.OBias))
		h = b.rmsNorm(x, p+"post_attention_layernorm")
		gate := b.linear(h, p+"mlp.gate_proj", true, c.MLPBias)
		up := b.linear(h, p+"mlp.up_proj", true, c.MLPBias)
		h = b.kernel(p+"mlp.swiglu", c.FF, func(out []float32, in [][]float32) { swiGLU(out, in[0], in[1], c.FF) }, gate, up)
		x = b.add(x, b.linear(h, p+"mlp.down_proj", true, c.MLPBias))
	}
	x = b.rmsNorm(x, "model.norm")
	head := "lm_head.weight"
	if c.TiedHead {
		head = "model.embed_tokens.weight"
	}
	logits := b.mul(x, b.weightT(head))
	return logits, b.err
}
