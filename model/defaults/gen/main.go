// Command gen regenerates model/defaults/data: a synthetic corpus, a
// byte-level BPE tokenizer learned from it, a small GPT-2 pretrained on it
// with gorgonia's backpropagation, and the fine-tuning task zopeer trains
// on by default. Everything is drawn from -seed; see docs/DEFAULT.md. The
// committed weights were made with the pure-Go matmul, whose bits do not
// depend on the machine's BLAS:
//
//	ZOPEER_BLAS=go go run ./model/defaults/gen -out model/defaults/data
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	G "gorgonia.org/gorgonia"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/blas"
	"github.com/zopeer/zopeer/model/safetensors"
	"github.com/zopeer/zopeer/model/tokenizer"
)

type options struct {
	out         string
	seed        uint64
	steps       int
	batch       int
	lr          float64
	merges      int
	checkDocs   int
	logEvery    int
	arch        arch
	warmupSteps int
	text        string // English mode: the Bible's text (see english.go)
	task        string // English mode: the Jargon File (jargon.dict.dz)
}

func main() {
	o := options{arch: arch{Hidden: 64, Layers: 2, Heads: 4, MaxPos: 128, NormEps: 1e-5}}
	flag.StringVar(&o.out, "out", "model/defaults/data", "output directory")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the corpus, the initialisation and the batches")
	flag.IntVar(&o.steps, "steps", 3000, "pretraining steps")
	flag.IntVar(&o.batch, "batch", 16, "documents per pretraining step")
	flag.Float64Var(&o.lr, "lr", 3e-3, "peak Adam learning rate (cosine decay to a tenth)")
	flag.IntVar(&o.merges, "merges", 255, "BPE merges to learn (vocabulary = 256 bytes + merges + <|endoftext|>)")
	flag.IntVar(&o.logEvery, "log", 100, "report the held-out loss every this many steps")
	flag.StringVar(&o.text, "text", "", "English mode: pretrain a byte-level model on this Bible text (output of `bible gen1:1-rev22:21`) instead of the synthetic language")
	flag.StringVar(&o.task, "task", "", "English mode: write the fine-tuning task from this Jargon File (/usr/share/dictd/jargon.dict.dz)")
	flag.IntVar(&o.arch.Hidden, "hidden", o.arch.Hidden, "model width")
	flag.IntVar(&o.arch.Layers, "layers", o.arch.Layers, "transformer blocks")
	flag.IntVar(&o.arch.Heads, "heads", o.arch.Heads, "attention heads")
	flag.IntVar(&o.arch.MaxPos, "ctx", o.arch.MaxPos, "context length (tokens)")
	flag.Parse()
	o.checkDocs, o.warmupSteps = 64, 100
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	G.Use(blas.Impl())
	log.Printf("gen: BLAS backend %s", blas.Current().Name)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	if o.text != "" {
		return runEnglish(o)
	}
	tok, vocab, err := writeTokenizer(o)
	if err != nil {
		return err
	}
	o.arch.Vocab = vocab
	if err := writeTask(o.out); err != nil {
		return err
	}
	w := initWeights(o.arch, o.seed)
	T := o.arch.MaxPos
	check, err := newDocs(o.seed+1, tok, T).batch(o.checkDocs)
	if err != nil {
		return err
	}
	if err := pretrainOn(o, w, newDocs(o.seed, tok, T), check); err != nil {
		return err
	}
	if err := writeModel(o.out, w); err != nil {
		return err
	}
	return checkExport(o.out, w, check)
}

// writeTokenizer learns the merges from a sample of the corpus plus the
// task's records, writes tokenizer.json and loads it back.
func writeTokenizer(o options) (*tokenizer.Tokenizer, int, error) {
	g := newGenerator(o.seed ^ 0xb9e)
	var texts []string
	for range 4000 {
		texts = append(texts, g.document(func(s string) bool { return len(s) < 400 }))
	}
	train, eval := taskPairs()
	for _, p := range append(train, eval...) {
		texts = append(texts, p.Prompt+p.Completion)
	}
	b, vocab, err := tokenizerJSON(learnBPE(texts, o.merges))
	if err != nil {
		return nil, 0, fmt.Errorf("gen: tokenizer.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.out, "tokenizer.json"), b, 0o644); err != nil {
		return nil, 0, fmt.Errorf("gen: %w", err)
	}
	tok, err := tokenizer.Parse(b)
	if err != nil {
		return nil, 0, fmt.Errorf("gen: reading back tokenizer.json: %w", err)
	}
	return tok, vocab, nil
}

// writeTask writes the fine-tuning records as JSON lines.
func writeTask(dir string) error {
	train, eval := taskPairs()
	for name, ps := range map[string][]pair{"train.jsonl": train, "eval.jsonl": eval} {
		var sb strings.Builder
		for _, p := range ps {
			b, err := json.Marshal(p)
			if err != nil {
				return fmt.Errorf("gen: %w", err)
			}
			sb.Write(b)
			sb.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sb.String()), 0o644); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
	}
	return nil
}

// docs draws tokenized documents that fit the context, each ending with
// <|endoftext|>.
type docs struct {
	g   *generator
	tok *tokenizer.Tokenizer
	eot int
	max int
	err error
}

func newDocs(seed uint64, tok *tokenizer.Tokenizer, maxLen int) *docs {
	id, _ := tok.TokenID(eot) // present: tokenizerJSON adds it
	return &docs{g: newGenerator(seed), tok: tok, eot: id, max: maxLen}
}

func (d *docs) encode(s string) []int {
	ids, err := d.tok.Encode(s, false)
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("gen: encoding %q: %w", s, err)
	}
	return ids
}

func (d *docs) next() ([]int, error) {
	text := d.g.document(func(s string) bool { return len(d.encode(s))+1 <= d.max })
	ids := append(d.encode(text), d.eot)
	return ids, d.err
}

func (d *docs) batch(n int) ([][]int, error) {
	out := make([][]int, n)
	for i := range out {
		var err error
		if out[i], err = d.next(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// batcher draws the pretraining batches.
type batcher interface {
	batch(n int) ([][]int, error)
}

// pretrainOn runs Adam on fresh batches from train each step, with a linear
// warm-up and a cosine decay to a tenth of the peak rate, reporting the
// loss on heldOut.
func pretrainOn(o options, w *weights, train batcher, heldOut [][]int) error {
	T := o.arch.MaxPos
	nt, err := newNet(w, o.batch, T, true)
	if err != nil {
		return err
	}
	ev, err := newNet(w, o.checkDocs, T, false)
	if err != nil {
		return err
	}
	zeros := make([]int, max(o.batch, o.checkDocs))
	evalLoss := func() (float64, error) {
		if err := ev.set(heldOut, zeros[:o.checkDocs]); err != nil {
			return 0, err
		}
		return ev.run()
	}
	opt := newAdam(nt.params, 0.01)
	start := time.Now()
	var avg float64
	for step := 1; step <= o.steps; step++ {
		b, err := train.batch(o.batch)
		if err != nil {
			return err
		}
		if err := nt.set(b, zeros[:o.batch]); err != nil {
			return err
		}
		loss, err := nt.run()
		if err != nil {
			return err
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return fmt.Errorf("gen: step %d: loss is %v", step, loss)
		}
		lr := o.lr * float64(step) / float64(o.warmupSteps)
		if step > o.warmupSteps {
			frac := float64(step-o.warmupSteps) / float64(max(1, o.steps-o.warmupSteps))
			lr = o.lr * (0.1 + 0.45*(1+math.Cos(math.Pi*frac)))
		}
		if err := opt.step(nt.params, lr); err != nil {
			return err
		}
		avg = 0.98*avg + 0.02*loss
		if step%o.logEvery == 0 || step == o.steps {
			el, err := evalLoss()
			if err != nil {
				return err
			}
			log.Printf("gen: step %d/%d  train loss (smoothed) %.4f  held-out loss %.4f  lr %.2e  %s",
				step, o.steps, avg/(1-math.Pow(0.98, float64(step))), el, lr, time.Since(start).Round(time.Second))
		}
	}
	return nil
}

// writeModel writes config.json and model.safetensors in Hugging Face's
// GPT-2 layout.
func writeModel(dir string, w *weights) error {
	a := w.a
	cfg := map[string]any{
		"architectures":       []string{"GPT2LMHeadModel"},
		"model_type":          "gpt2",
		"activation_function": "gelu_new",
		"vocab_size":          a.Vocab,
		"n_embd":              a.Hidden,
		"n_layer":             a.Layers,
		"n_head":              a.Heads,
		"n_positions":         a.MaxPos,
		"n_ctx":               a.MaxPos,
		"n_inner":             nil,
		"layer_norm_epsilon":  a.NormEps,
		"tie_word_embeddings": true,
		"bos_token_id":        a.Vocab - 1,
		"eos_token_id":        a.Vocab - 1,
		"torch_dtype":         "float32",
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	var ts []safetensors.Tensor
	for _, t := range w.toHF() {
		ts = append(ts, safetensors.Tensor{Name: t.name, Shape: t.shape, Data: t.data})
	}
	return safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), safetensors.F32, ts, map[string]string{"format": "pt"})
}

// checkExport loads the written model with model.Load and compares its
// loss on the held-out batch with the training graph's.
func checkExport(dir string, w *weights, batch [][]int) error {
	m, err := model.Load(dir)
	if err != nil {
		return fmt.Errorf("gen: loading the exported model: %w", err)
	}
	seqs := make([]model.Sequence, len(batch))
	for i, s := range batch {
		seqs[i] = model.Sequence{Tokens: s}
	}
	got, _, err := m.Loss(seqs)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	nt, err := newNet(w, len(batch), w.a.MaxPos, false)
	if err != nil {
		return err
	}
	if err := nt.set(batch, make([]int, len(batch))); err != nil {
		return err
	}
	want, err := nt.run()
	if err != nil {
		return err
	}
	log.Printf("gen: held-out loss: training graph %.6f, model.Loss %.6f", want, got)
	if math.Abs(got-want) > 1e-4 {
		return fmt.Errorf("gen: model.Loss %.6f differs from the training graph's %.6f", got, want)
	}
	return nil
}
