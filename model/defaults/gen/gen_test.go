package main

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/tokenizer"
)

var tiny = arch{Vocab: 40, Hidden: 16, Layers: 2, Heads: 2, MaxPos: 8, NormEps: 1e-5}

// tinyWeights perturbs the initialisation so that biases, gains and the
// attention pattern all matter.
func tinyWeights(t *testing.T) *weights {
	t.Helper()
	w := initWeights(tiny, 7)
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range w.names {
		d := w.data(n)
		for i := range d {
			d[i] += float32(r.NormFloat64() * 0.3)
		}
	}
	return w
}

func tinyBatch() ([][]int, []int) {
	r := rand.New(rand.NewPCG(5, 6))
	seqs := make([][]int, 3)
	for i, n := range []int{8, 5, 2} {
		for range n {
			seqs[i] = append(seqs[i], r.IntN(tiny.Vocab))
		}
	}
	return seqs, []int{0, 3, 1}
}

// The exported checkpoint, read by model.Load, computes the training
// graph's loss: same tensors, same layout, same masking.
func TestExportMatchesModelLoss(t *testing.T) {
	w := tinyWeights(t)
	dir := t.TempDir()
	if err := writeModel(dir, w); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	seqs, from := tinyBatch()
	var batch []model.Sequence
	for i, s := range seqs {
		batch = append(batch, model.Sequence{Tokens: s, LossFrom: from[i]})
	}
	want, _, err := m.Loss(batch)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := newNet(w, len(seqs), tiny.MaxPos, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := nt.set(seqs, from); err != nil {
		t.Fatal(err)
	}
	got, err := nt.run()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-4 {
		t.Fatalf("training graph loss %.6f, model.Loss %.6f", got, want)
	}
}

// Backpropagation agrees with central differences, and a second run on the
// same batch, after the optimiser clears the gradients, gives the same
// gradients.
func TestGradient(t *testing.T) {
	w := tinyWeights(t)
	seqs, from := tinyBatch()
	nt, err := newNet(w, len(seqs), tiny.MaxPos, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := nt.set(seqs, from); err != nil {
		t.Fatal(err)
	}
	grads := func() map[string][]float32 {
		if _, err := nt.run(); err != nil {
			t.Fatal(err)
		}
		out := map[string][]float32{}
		for _, p := range nt.params {
			g, err := p.Grad()
			if err != nil {
				t.Fatal(err)
			}
			gd := g.Data().([]float32)
			out[p.Name()] = append([]float32(nil), gd...)
			clear(gd)
		}
		return out
	}
	g1, g2 := grads(), grads()
	for _, n := range w.names {
		for i := range g1[n] {
			if g1[n][i] != g2[n][i] {
				t.Fatalf("%s[%d]: gradient %g, then %g on a second run", n, i, g1[n][i], g2[n][i])
			}
		}
	}
	loss := func() float64 {
		l, err := nt.run()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range nt.params {
			g, _ := p.Grad()
			clear(g.Data().([]float32))
		}
		return l
	}
	const h = 1e-2
	r := rand.New(rand.NewPCG(8, 9))
	for _, n := range w.names {
		d := w.data(n)
		for range 2 {
			i := r.IntN(len(d))
			old := d[i]
			d[i] = old + h
			up := loss()
			d[i] = old - h
			down := loss()
			d[i] = old
			fd := (up - down) / (2 * h)
			if bp := float64(g1[n][i]); math.Abs(fd-bp) > 2e-3+0.05*math.Abs(fd) {
				t.Errorf("%s[%d]: backprop %.5f, central difference %.5f", n, i, bp, fd)
			}
		}
	}
}

// The tokenizer the generator writes is one model/tokenizer loads, and it
// encodes the corpus compactly.
func TestTokenizer(t *testing.T) {
	g := newGenerator(1)
	var texts []string
	for range 500 {
		texts = append(texts, g.document(func(s string) bool { return len(s) < 400 }))
	}
	merges := learnBPE(texts, 255)
	b, vocab, err := tokenizerJSON(merges)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := 256 + len(merges) + 1; tok.VocabSize() != vocab || vocab != want {
		t.Fatalf("vocabulary %d, tokenizer says %d, want %d", vocab, tok.VocabSize(), want)
	}
	ids, err := tok.Encode(texts[0], false)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := tok.Decode(ids, false); err != nil || back != texts[0] {
		t.Fatalf("round trip: %q, %v", back, err)
	}
	if 5*len(ids) > 2*len(texts[0]) {
		t.Errorf("%d tokens for %d bytes: merges barely apply", len(ids), len(texts[0]))
	}
}
