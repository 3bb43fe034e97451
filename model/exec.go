package model

import (
	"fmt"
	"math"

	gblas "gonum.org/v1/gonum/blas"

	"github.com/zopeer/zopeer/model/blas"
)

// ViewSource supplies parameter values to a forward pass that does not hold
// them: FillView writes elements [lo, lo+len(dst)) of parameter i (in Params
// order) into dst, as the pass must see them now. zo.Engine implements it
// (after zo.Weights.DropViews): the view is derived from the int32 weights,
// perturbed inside a ZO step, just before the layer that reads it.
type ViewSource interface {
	FillView(i, lo int, dst []float32)
}

// SetSource makes every later forward pass read its parameters from src,
// layer by layer, into a working set the model reuses (the largest matrix,
// a few vectors and the activations), and releases the Params' Data slices
// (Params then returns them nil). The model must not be used concurrently
// with writes to src's weights.
func (m *Model) SetSource(src ViewSource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.src = src
	for i := range m.params {
		m.params[i].Data = nil
	}
}

// layerIdx holds the Params indices of one block's tensors (−1: absent).
type layerIdx struct {
	norm1W, norm1B, norm2W, norm2B int
	qkvW, qkvB                     int // GPT-2's fused c_attn
	qW, qB, kW, kB, vW, vB         int
	oW, oB                         int
	upW, upB, gateW, gateB         int // GPT-2: c_fc is up
	downW, downB                   int
}

// layout is where each tensor of the forward pass sits in Params.
type layout struct {
	embed, pos, normW, normB, head int
	layers                         []layerIdx
}

func (m *Model) index(name string) int {
	if i, ok := m.idx[name]; ok {
		return i
	}
	return -1
}

func (m *Model) makeLayout() {
	c := m.cfg
	l := &m.lay
	l.layers = make([]layerIdx, c.Layers)
	switch c.Arch {
	case GPT2:
		l.embed, l.pos, l.head = m.index("transformer.wte.weight"), m.index("transformer.wpe.weight"), m.index("transformer.wte.weight")
		l.normW, l.normB = m.index("transformer.ln_f.weight"), m.index("transformer.ln_f.bias")
		for i := range l.layers {
			p := fmt.Sprintf("transformer.h.%d.", i)
			l.layers[i] = layerIdx{
				norm1W: m.index(p + "ln_1.weight"), norm1B: m.index(p + "ln_1.bias"),
				qkvW: m.index(p + "attn.c_attn.weight"), qkvB: m.index(p + "attn.c_attn.bias"),
				qW: -1, qB: -1, kW: -1, kB: -1, vW: -1, vB: -1,
				oW: m.index(p + "attn.c_proj.weight"), oB: m.index(p + "attn.c_proj.bias"),
				norm2W: m.index(p + "ln_2.weight"), norm2B: m.index(p + "ln_2.bias"),
				upW: m.index(p + "mlp.c_fc.weight"), upB: m.index(p + "mlp.c_fc.bias"), gateW: -1, gateB: -1,
				downW: m.index(p + "mlp.c_proj.weight"), downB: m.index(p + "mlp.c_proj.bias"),
			}
		}
	case Llama:
		l.embed, l.pos, l.head = m.index("model.embed_tokens.weight"), -1, m.index("lm_head.weight")
		if c.TiedHead {
			l.head = l.embed
		}
		l.normW, l.normB = m.index("model.norm.weight"), -1
		for i := range l.layers {
			p := fmt.Sprintf("model.layers.%d.", i)
			l.layers[i] = layerIdx{
				norm1W: m.index(p + "input_layernorm.weight"), norm1B: -1,
				qkvW: -1, qkvB: -1,
				qW: m.index(p + "self_attn.q_proj.weight"), qB: m.index(p + "self_attn.q_proj.bias"),
				kW: m.index(p + "self_attn.k_proj.weight"), kB: m.index(p + "self_attn.k_proj.bias"),
				vW: m.index(p + "self_attn.v_proj.weight"), vB: m.index(p + "self_attn.v_proj.bias"),
				oW: m.index(p + "self_attn.o_proj.weight"), oB: m.index(p + "self_attn.o_proj.bias"),
				norm2W: m.index(p + "post_attention_layernorm.weight"), norm2B: -1,
				gateW: m.index(p + "mlp.gate_proj.weight"), gateB: m.index(p + "mlp.gate_proj.bias"),
				upW: m.index(p + "mlp.up_proj.weight"), upB: m.index(p + "mlp.up_proj.bias"),
				downW: m.index(p + "mlp.down_proj.weight"), downB: m.index(p + "mlp.down_proj.bias"),
			}
		}
	}
}

// headChunkMin is the least number of vocabulary rows the head multiplies at
// a time; more when the largest matrix of the model holds more.
const headChunkMin = 2048

// exec is the forward pass's working set, reused by every pass: activations
// sized to the largest pass so far, and (with a ViewSource) the buffers the
// parameters are derived into, one tensor at a time. Nothing in it grows with
// the number of layers.
type exec struct {
	in                       packed
	x, h, a, q, k, v, ff, up []float32
	att                      attention
	rope                     *rope
	mat                      []float32    // the matrix being used (or a chunk of the head)
	vec                      [3][]float32 // norm weights, biases
	xs, logits               []float32    // target rows after the final norm; one head chunk's logits
	mx, tgt                  []float32    // running max and target logit per target row
	sum                      []float64    // running Σ exp(logit − max) per target row
	targets                  []target
}

type target struct{ row, tok int }

// grow returns b resliced to n elements, reallocated if too small.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// param returns parameter i's values: its Data, or (with a source) the view
// derived into buf.
func (m *Model) param(i int, buf *[]float32) []float32 {
	if m.src == nil {
		return m.params[i].Data
	}
	n := m.sizes[i]
	*buf = grow(*buf, n)
	m.src.FillView(i, 0, *buf)
	return *buf
}

// paramRow copies row r of a [·, d] parameter (d = len(dst)) into dst.
func (m *Model) paramRow(i, r int, dst []float32) {
	d := len(dst)
	if m.src == nil {
		copy(dst, m.params[i].Data[r*d:(r+1)*d])
		return
	}
	m.src.FillView(i, r*d, dst)
}

// WorkingSetBytes is what the forward pass holds besides the weights: its
// activation buffers and the buffers parameters are derived into.
func (m *Model) WorkingSetBytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := &m.ex
	n := 4 * (cap(e.x) + cap(e.h) + cap(e.a) + cap(e.q) + cap(e.k) + cap(e.v) + cap(e.ff) + cap(e.up) +
		cap(e.mat) + cap(e.vec[0]) + cap(e.vec[1]) + cap(e.vec[2]) + cap(e.xs) + cap(e.logits) + cap(e.mx) + cap(e.tgt) +
		cap(e.att.qr) + cap(e.att.kr))
	for _, s := range e.att.scratch {
		n += 4 * cap(s)
	}
	if e.rope != nil {
		n += 4 * (cap(e.rope.cos) + cap(e.rope.sin))
	}
	return n + 8*cap(e.sum) + 16*cap(e.targets) + 8*(cap(e.in.tokens)+cap(e.in.pos))
}

// pack lays the sequences out as rows, end to end.
func (e *exec) pack(seqs []Sequence) int {
	p := &e.in
	rows := 0
	for _, s := range seqs {
		rows += len(s.Tokens)
	}
	p.tokens, p.pos = grow(p.tokens, rows), grow(p.pos, rows)
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
	return rows
}

// matmul is out = x·W (+ out if acc) for x [rows, in] and W stored [in, out]
// (Conv1D) or [out, in] (nn.Linear, trans).
func matmul(out, x, w []float32, rows, in, outCols int, trans, acc bool) {
	tB, ldb := gblas.NoTrans, outCols
	if trans {
		tB, ldb = gblas.Trans, in
	}
	beta := float32(0)
	if acc {
		beta = 1
	}
	blas.Impl().Sgemm(gblas.NoTrans, tB, rows, outCols, in, 1, x, in, w, ldb, beta, out, outCols)
}

// linear is out = x·W + b (+ out if acc); b is skipped when bi < 0.
func (m *Model) linear(out, x []float32, rows, in, outCols, wi, bi int, acc bool) {
	e := &m.ex
	if acc && bi >= 0 {
		addBias(out, out, m.param(bi, &e.vec[2]))
	}
	matmul(out, x, m.param(wi, &e.mat), rows, in, outCols, m.cfg.Arch == Llama, acc)
	if !acc && bi >= 0 {
		addBias(out, out, m.param(bi, &e.vec[2]))
	}
}

func (m *Model) norm(out, x []float32, wi, bi int) {
	e := &m.ex
	var b []float32
	if bi >= 0 {
		b = m.param(bi, &e.vec[1])
	}
	normRows(out, x, m.param(wi, &e.vec[0]), b, m.cfg.Hidden, m.cfg.NormEps, bi < 0)
}

// run computes the final hidden states of the packed rows into e.h.
func (m *Model) run(rows int) {
	c, e, l := m.cfg, &m.ex, &m.lay
	d, qw, kw := c.Hidden, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	e.x, e.h, e.a = grow(e.x, rows*d), grow(e.h, rows*d), grow(e.a, rows*qw)
	e.ff = grow(e.ff, rows*c.FF)
	e.att = attention{heads: c.Heads, kvHeads: c.KVHeads, headDim: c.HeadDim, in: &e.in, qr: e.att.qr, kr: e.att.kr, scratch: e.att.scratch}
	if c.Arch == GPT2 {
		e.q = grow(e.q, rows*3*d)
	} else {
		e.q, e.k, e.v = grow(e.q, rows*qw), grow(e.k, rows*kw), grow(e.v, rows*kw)
		e.up = grow(e.up, rows*c.FF)
		longest := 0
		for _, s := range e.in.segs {
			longest = max(longest, s.n)
		}
		if e.rope == nil || len(e.rope.cos) < longest*e.rope.half {
			e.rope = newRope(max(longest, 64), c.HeadDim, c.RopeTheta, c.Llama3Rope)
		}
		e.att.rope = e.rope
		e.att.qr, e.att.kr = grow(e.att.qr, rows*qw), grow(e.att.kr, rows*kw)
	}

	// Embedding: only the rows the tokens (and positions) select are derived.
	for r, t := range e.in.tokens {
		m.paramRow(l.embed, t, e.x[r*d:(r+1)*d])
	}
	if l.pos >= 0 {
		for r, p := range e.in.pos {
			pe := e.h[r*d : (r+1)*d]
			m.paramRow(l.pos, p, pe)
			xr := e.x[r*d : (r+1)*d]
			for i := range xr {
				xr[i] += pe[i]
			}
		}
	}
	for _, li := range l.layers {
		m.norm(e.h, e.x, li.norm1W, li.norm1B)
		if c.Arch == GPT2 {
			m.linear(e.q, e.h, rows, d, 3*d, li.qkvW, li.qkvB, false)
			e.att.run(e.a, [][]float32{e.q})
		} else {
			m.linear(e.q, e.h, rows, d, qw, li.qW, li.qB, false)
			m.linear(e.k, e.h, rows, d, kw, li.kW, li.kB, false)
			m.linear(e.v, e.h, rows, d, kw, li.vW, li.vB, false)
			e.att.run(e.a, [][]float32{e.q, e.k, e.v})
		}
		m.linear(e.x, e.a, rows, qw, d, li.oW, li.oB, true)
		m.norm(e.h, e.x, li.norm2W, li.norm2B)
		if c.Arch == GPT2 {
			m.linear(e.ff, e.h, rows, d, c.FF, li.upW, -1, false)
			geluBias(e.ff, e.ff, m.param(li.upB, &e.vec[2]))
		} else {
			m.linear(e.ff, e.h, rows, d, c.FF, li.gateW, li.gateB, false)
			m.linear(e.up, e.h, rows, d, c.FF, li.upW, li.upB, false)
			swiGLU(e.ff, e.ff, e.up, c.FF)
		}
		m.linear(e.x, e.ff, rows, c.FF, d, li.downW, li.downB, true)
	}
	m.norm(e.h, e.x, l.normW, l.normB)
}

// headChunk is the number of vocabulary rows multiplied at a time.
func (m *Model) headChunk() int {
	return min(m.cfg.Vocab, max(headChunkMin, m.maxMatrix/m.cfg.Hidden))
}

// headRows returns vocabulary rows [v0, v1) of the head matrix [V, d].
func (m *Model) headRows(v0, v1 int) []float32 {
	d := m.cfg.Hidden
	if m.src == nil {
		return m.params[m.lay.head].Data[v0*d : v1*d]
	}
	e := &m.ex
	e.mat = grow(e.mat, max(cap(e.mat), (v1-v0)*d))[:(v1-v0)*d]
	m.src.FillView(m.lay.head, v0*d, e.mat)
	return e.mat
}

// logitsInto writes the logits of the rows of x ([rows, d]) into out
// ([rows, vocab]), one chunk of the head at a time.
func (m *Model) logitsInto(out, x []float32, rows int) {
	d, v := m.cfg.Hidden, m.cfg.Vocab
	for v0 := 0; v0 < v; v0 += m.headChunk() {
		v1 := min(v, v0+m.headChunk())
		blas.Impl().Sgemm(gblas.NoTrans, gblas.Trans, rows, v1-v0, d, 1, x, d, m.headRows(v0, v1), d, 0, out[v0:], v)
	}
}

// crossEntropy sums −log p(target) over the target rows of the packed pass,
// from e.h. Only the target rows go through the head, one chunk of the
// vocabulary at a time, with a running log-sum-exp per row: the full logits
// are never held.
func (m *Model) crossEntropy() (float64, int) {
	e, d, v := &m.ex, m.cfg.Hidden, m.cfg.Vocab
	p := &e.in
	e.targets = e.targets[:0]
	for k, s := range p.segs {
		seq := p.seqs[k]
		for i := max(1, seq.LossFrom); i < s.n; i++ {
			if seq.Mask == nil || seq.Mask[i] {
				e.targets = append(e.targets, target{s.start + i - 1, seq.Tokens[i]})
			}
		}
	}
	nt := len(e.targets)
	if nt == 0 {
		return 0, 0
	}
	e.xs = grow(e.xs, nt*d)
	for j, t := range e.targets {
		copy(e.xs[j*d:(j+1)*d], e.h[t.row*d:(t.row+1)*d])
	}
	e.mx, e.tgt, e.sum = grow(e.mx, nt), grow(e.tgt, nt), grow(e.sum, nt)
	for j := range nt {
		e.mx[j], e.sum[j] = float32(math.Inf(-1)), 0
	}
	chunk := m.headChunk()
	e.logits = grow(e.logits, nt*chunk)
	for v0 := 0; v0 < v; v0 += chunk {
		v1 := min(v, v0+chunk)
		n := v1 - v0
		lg := e.logits[:nt*n]
		blas.Impl().Sgemm(gblas.NoTrans, gblas.Trans, nt, n, d, 1, e.xs, d, m.headRows(v0, v1), d, 0, lg, n)
		parallelRows(nt, 10*n, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				row := lg[j*n : (j+1)*n]
				mx := max(e.mx[j], maxOf(row))
				s := e.sum[j]
				if mx > e.mx[j] {
					s *= math.Exp(float64(e.mx[j] - mx))
				}
				e.mx[j], e.sum[j] = mx, s+expSum(row, -mx)
				if t := e.targets[j].tok; t >= v0 && t < v1 {
					e.tgt[j] = row[t-v0]
				}
			}
		})
	}
	var sum float64
	for j := range nt {
		sum += math.Log(e.sum[j]) + float64(e.mx[j]) - float64(e.tgt[j])
	}
	return sum, nt
}
