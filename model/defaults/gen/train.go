package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// arch is the GPT-2 shape being trained.
type arch struct {
	Vocab, Hidden, Layers, Heads, MaxPos int
	NormEps                              float64
}

func (a arch) headDim() int { return a.Hidden / a.Heads }
func (a arch) ff() int      { return 4 * a.Hidden }

// weights holds the parameters in the training graph's layout: attention
// projections are split per head and per q/k/v so that the graph needs no
// column slicing (gorgonia's slices of matrix columns are strided views its
// matmul does not take); toHF assembles Hugging Face's fused tensors.
type weights struct {
	a     arch
	names []string
	t     map[string]*tensor.Dense
}

func (w *weights) add(name string, data []float32, shape ...int) {
	w.names = append(w.names, name)
	w.t[name] = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

func (w *weights) data(name string) []float32 { return w.t[name].Data().([]float32) }

// initWeights draws GPT-2's initialisation: N(0, 0.02) matrices and
// embeddings, residual output projections scaled by 1/√(2·layers), zero
// biases, unit LayerNorm gains.
func initWeights(a arch, seed uint64) *weights {
	r := rand.New(rand.NewPCG(seed, 0x1417))
	w := &weights{a: a, t: map[string]*tensor.Dense{}}
	normal := func(std float64, shape ...int) []float32 {
		n := 1
		for _, d := range shape {
			n *= d
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * std)
		}
		return x
	}
	ones := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = 1
		}
		return x
	}
	d, hd, ff := a.Hidden, a.headDim(), a.ff()
	resid := 0.02 / math.Sqrt(2*float64(a.Layers))
	w.add("wte", normal(0.02, a.Vocab, d), a.Vocab, d)
	w.add("wpe", normal(0.01, a.MaxPos, d), a.MaxPos, d)
	for l := range a.Layers {
		p := fmt.Sprintf("h%d.", l)
		w.add(p+"ln1.g", ones(d), d)
		w.add(p+"ln1.b", make([]float32, d), d)
		for h := range a.Heads {
			for _, qkv := range "qkv" {
				n := fmt.Sprintf("%s%c%d", p, qkv, h)
				w.add(n+".w", normal(0.02, d, hd), d, hd)
				w.add(n+".b", make([]float32, hd), hd)
			}
		}
		w.add(p+"o.w", normal(resid, d, d), d, d)
		w.add(p+"o.b", make([]float32, d), d)
		w.add(p+"ln2.g", ones(d), d)
		w.add(p+"ln2.b", make([]float32, d), d)
		w.add(p+"fc.w", normal(0.02, d, ff), d, ff)
		w.add(p+"fc.b", make([]float32, ff), ff)
		w.add(p+"proj.w", normal(resid, ff, d), ff, d)
		w.add(p+"proj.b", make([]float32, d), d)
	}
	w.add("lnf.g", ones(d), d)
	w.add("lnf.b", make([]float32, d), d)
	return w
}

// hfTensor is one tensor under its Hugging Face GPT-2 name, Conv1D weights
// [in, out].
type hfTensor struct {
	name  string
	shape []int
	data  []float32
}

// toHF assembles the Hugging Face GPT-2 tensors. c_attn's output columns
// are q, k, v, each split into heads of headDim consecutive columns, as
// GPT2Attention.split_heads reads them.
func (w *weights) toHF() []hfTensor {
	a := w.a
	d, hd := a.Hidden, a.headDim()
	ts := []hfTensor{
		{"transformer.wte.weight", []int{a.Vocab, d}, w.data("wte")},
		{"transformer.wpe.weight", []int{a.MaxPos, d}, w.data("wpe")},
	}
	for l := range a.Layers {
		p, hp := fmt.Sprintf("h%d.", l), fmt.Sprintf("transformer.h.%d.", l)
		attnW, attnB := make([]float32, d*3*d), make([]float32, 3*d)
		for i, qkv := range "qkv" {
			for h := range a.Heads {
				n := fmt.Sprintf("%s%c%d", p, qkv, h)
				col := i*d + h*hd
				src := w.data(n + ".w")
				for r := range d {
					copy(attnW[r*3*d+col:][:hd], src[r*hd:][:hd])
				}
				copy(attnB[col:][:hd], w.data(n+".b"))
			}
		}
		ts = append(ts,
			hfTensor{hp + "ln_1.weight", []int{d}, w.data(p + "ln1.g")},
			hfTensor{hp + "ln_1.bias", []int{d}, w.data(p + "ln1.b")},
			hfTensor{hp + "attn.c_attn.weight", []int{d, 3 * d}, attnW},
			hfTensor{hp + "attn.c_attn.bias", []int{3 * d}, attnB},
			hfTensor{hp + "attn.c_proj.weight", []int{d, d}, w.data(p + "o.w")},
			hfTensor{hp + "attn.c_proj.bias", []int{d}, w.data(p + "o.b")},
			hfTensor{hp + "ln_2.weight", []int{d}, w.data(p + "ln2.g")},
			hfTensor{hp + "ln_2.bias", []int{d}, w.data(p + "ln2.b")},
			hfTensor{hp + "mlp.c_fc.weight", []int{d, a.ff()}, w.data(p + "fc.w")},
			hfTensor{hp + "mlp.c_fc.bias", []int{a.ff()}, w.data(p + "fc.b")},
			hfTensor{hp + "mlp.c_proj.weight", []int{a.ff(), d}, w.data(p + "proj.w")},
			hfTensor{hp + "mlp.c_proj.bias", []int{d}, w.data(p + "proj.b")},
		)
	}
	return append(ts,
		hfTensor{"transformer.ln_f.weight", []int{d}, w.data("lnf.g")},
		hfTensor{"transformer.ln_f.bias", []int{d}, w.data("lnf.b")})
}

// net is the training graph for batches of rows sequences of cols tokens:
// GPT-2's forward pass and mean next-token cross-entropy out of
// differentiable gorgonia ops, with its gradient.
type net struct {
	w          *weights
	rows, cols int
	g          *G.ExprGraph
	params     G.Nodes
	x, y       *tensor.Dense // one-hot tokens; target weights (1/targets at each target)
	loss       *G.Node
	vm         G.VM
}

// gb wraps graph construction so the model reads like the model; the first
// error sticks and later calls return nil.
type gb struct {
	g   *G.ExprGraph
	err error
}

func (b *gb) do(f func() (*G.Node, error)) *G.Node {
	if b.err != nil {
		return nil
	}
	n, err := f()
	if err != nil {
		b.err = err
	}
	return n
}

func (b *gb) mul(x, y *G.Node) *G.Node { return b.do(func() (*G.Node, error) { return G.Mul(x, y) }) }
func (b *gb) add(x, y *G.Node) *G.Node { return b.do(func() (*G.Node, error) { return G.Add(x, y) }) }
func (b *gb) prod(x, y *G.Node) *G.Node {
	return b.do(func() (*G.Node, error) { return G.HadamardProd(x, y) })
}
func (b *gb) scale(x *G.Node, s float32) *G.Node {
	return b.do(func() (*G.Node, error) { return G.Mul(x, G.NewConstant(s)) })
}
func (b *gb) shift(x *G.Node, s float32) *G.Node {
	return b.do(func() (*G.Node, error) { return G.Add(x, G.NewConstant(s)) })
}

// bias adds a vector to every row of x.
func (b *gb) bias(x, v *G.Node) *G.Node {
	return b.do(func() (*G.Node, error) { return G.BroadcastAdd(x, v, nil, []byte{0}) })
}

// linear is x·w + bias for [in, out] weights.
func (b *gb) linear(x, w, v *G.Node) *G.Node { return b.bias(b.mul(x, w), v) }

// layerNorm normalises each row of x ([n, d]) to zero mean and unit
// variance, then scales by g and shifts by v.
func (b *gb) layerNorm(x, g, v *G.Node, d int, eps float64) *G.Node {
	inv := float32(1 / float64(d))
	mean := b.scale(b.do(func() (*G.Node, error) { return G.Sum(x, 1) }), inv)
	xc := b.do(func() (*G.Node, error) { return G.BroadcastSub(x, mean, nil, []byte{1}) })
	sq := b.do(func() (*G.Node, error) { return G.Square(xc) })
	variance := b.scale(b.do(func() (*G.Node, error) { return G.Sum(sq, 1) }), inv)
	// 1/√ as two ops: gorgonia v0.9.18's InverseSqrt has a wrong gradient.
	std := b.do(func() (*G.Node, error) { return G.Sqrt(b.shift(variance, float32(eps))) })
	rstd := b.do(func() (*G.Node, error) { return G.Inverse(std) })
	y := b.do(func() (*G.Node, error) { return G.BroadcastHadamardProd(xc, rstd, nil, []byte{1}) })
	y = b.do(func() (*G.Node, error) { return G.BroadcastHadamardProd(y, g, nil, []byte{0}) })
	return b.bias(y, v)
}

// gelu is GPT-2's tanh approximation.
func (b *gb) gelu(x *G.Node) *G.Node {
	cube := b.do(func() (*G.Node, error) { return G.Cube(x) })
	inner := b.scale(b.add(x, b.scale(cube, 0.044715)), 0.7978845608028654)
	t := b.shift(b.do(func() (*G.Node, error) { return G.Tanh(inner) }), 1)
	return b.scale(b.prod(x, t), 0.5)
}

func (b *gb) reshape(x *G.Node, s ...int) *G.Node {
	return b.do(func() (*G.Node, error) { return G.Reshape(x, s) })
}

// newNet builds the graph; with grad it also builds the backward pass.
func newNet(w *weights, rows, cols int, grad bool) (nt *net, err error) {
	// gorgonia reports some graph errors by panicking; keep them errors.
	defer func() {
		if r := recover(); r != nil {
			nt, err = nil, fmt.Errorf("gen: building graph: %v", r)
		}
	}()
	a := w.a
	n, d, hd := rows*cols, a.Hidden, a.headDim()
	g := G.NewGraph()
	nt = &net{w: w, rows: rows, cols: cols, g: g,
		x: tensor.New(tensor.WithShape(n, a.Vocab), tensor.Of(tensor.Float32)),
		y: tensor.New(tensor.WithShape(n, a.Vocab), tensor.Of(tensor.Float32)),
	}
	p := map[string]*G.Node{}
	for _, name := range w.names {
		t := w.t[name]
		p[name] = G.NodeFromAny(g, t, G.WithName(name))
		nt.params = append(nt.params, p[name])
	}
	input := func(t *tensor.Dense, name string) *G.Node { return G.NodeFromAny(g, t, G.WithName(name)) }
	// Positions and the causal mask are the same for every batch.
	pos := tensor.New(tensor.WithShape(n, a.MaxPos), tensor.Of(tensor.Float32))
	posData := pos.Data().([]float32)
	for r := range n {
		posData[r*a.MaxPos+r%cols] = 1
	}
	mask := make([]float32, rows*cols*cols)
	for i := range rows * cols {
		for j := i%cols + 1; j < cols; j++ {
			mask[i*cols+j] = -1e9
		}
	}
	maskNode := G.NodeFromAny(g, tensor.New(tensor.WithShape(rows, cols, cols), tensor.WithBacking(mask)), G.WithName("mask"))

	b := &gb{g: g}
	x := b.add(b.mul(input(nt.x, "x"), p["wte"]), b.mul(input(pos, "pos"), p["wpe"]))
	for l := range a.Layers {
		pf := fmt.Sprintf("h%d.", l)
		h := b.layerNorm(x, p[pf+"ln1.g"], p[pf+"ln1.b"], d, a.NormEps)
		var heads G.Nodes
		for hi := range a.Heads {
			proj := func(c byte) *G.Node {
				name := fmt.Sprintf("%s%c%d", pf, c, hi)
				return b.reshape(b.linear(h, p[name+".w"], p[name+".b"]), rows, cols, hd)
			}
			q, k, v := proj('q'), proj('k'), proj('v')
			s := b.do(func() (*G.Node, error) { return G.BatchedMatMul(q, k, false, true) })
			s = b.add(b.scale(s, float32(1/math.Sqrt(float64(hd)))), maskNode)
			att := b.do(func() (*G.Node, error) { return G.SoftMax(s) })
			o := b.do(func() (*G.Node, error) { return G.BatchedMatMul(att, v) })
			heads = append(heads, b.reshape(o, n, hd))
		}
		cat := b.do(func() (*G.Node, error) { return G.Concat(1, heads...) })
		x = b.add(x, b.linear(cat, p[pf+"o.w"], p[pf+"o.b"]))
		h = b.layerNorm(x, p[pf+"ln2.g"], p[pf+"ln2.b"], d, a.NormEps)
		h = b.gelu(b.linear(h, p[pf+"fc.w"], p[pf+"fc.b"]))
		x = b.add(x, b.linear(h, p[pf+"proj.w"], p[pf+"proj.b"]))
	}
	x = b.layerNorm(x, p["lnf.g"], p["lnf.b"], d, a.NormEps)
	wteT := b.do(func() (*G.Node, error) { return G.Transpose(p["wte"]) })
	logp := b.do(func() (*G.Node, error) { return G.LogSoftMax(b.mul(x, wteT)) })
	sum := b.do(func() (*G.Node, error) { return G.Sum(b.prod(logp, input(nt.y, "y"))) })
	nt.loss = b.do(func() (*G.Node, error) { return G.Neg(sum) })
	if b.err != nil {
		return nil, fmt.Errorf("gen: building graph: %w", b.err)
	}
	if grad {
		if _, err := G.Grad(nt.loss, nt.params...); err != nil {
			return nil, fmt.Errorf("gen: gradient: %w", err)
		}
		nt.vm = G.NewTapeMachine(g, G.BindDualValues(nt.params...))
	} else {
		nt.vm = G.NewTapeMachine(g)
	}
	return nt, nil
}

// set loads a batch: each sequence fills one row from position 0, and the
// prediction of token i+1 from row position i is a target when i+1 ≥
// lossFrom[k]. The loss is the mean over targets, as model.Loss computes it.
func (nt *net) set(seqs [][]int, lossFrom []int) error {
	if len(seqs) != nt.rows {
		return fmt.Errorf("gen: batch of %d sequences for a graph of %d", len(seqs), nt.rows)
	}
	v := nt.w.a.Vocab
	x, y := nt.x.Data().([]float32), nt.y.Data().([]float32)
	clear(x)
	clear(y)
	targets := 0
	for k, s := range seqs {
		if len(s) > nt.cols {
			return fmt.Errorf("gen: sequence of %d tokens for rows of %d", len(s), nt.cols)
		}
		for i, t := range s {
			x[(k*nt.cols+i)*v+t] = 1
			if i > 0 && i >= lossFrom[k] {
				targets++
			}
		}
	}
	if targets == 0 {
		return fmt.Errorf("gen: batch has no targets")
	}
	wt := float32(1 / float64(targets))
	for k, s := range seqs {
		for i := max(1, lossFrom[k]); i < len(s); i++ {
			y[(k*nt.cols+i-1)*v+s[i]] = wt
		}
	}
	return nil
}

// run computes the loss (and gradients, for a training graph) of the
// loaded batch.
func (nt *net) run() (float64, error) {
	defer nt.vm.Reset()
	if err := nt.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("gen: running graph: %w", err)
	}
	return float64(nt.loss.Value().Data().(float32)), nil
}
