package defaults_test

import (
	"io/fs"
	"math"
	"path/filepath"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/dataset"
	"github.com/zopeer/zopeer/model/defaults"
	"github.com/zopeer/zopeer/model/tokenizer"
	"github.com/zopeer/zopeer/zo"
)

type task struct {
	m           *model.Model
	train, eval *dataset.Dataset
}

// load materialises the embedded files and reads them the way the node
// does.
func load(t *testing.T) task {
	t.Helper()
	dir := t.TempDir()
	if err := defaults.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(filepath.Join(dir, defaults.TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config()
	if err := tok.CheckModelVocab(cfg.Vocab); err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != cfg.Vocab {
		t.Fatalf("tokenizer has %d ids, the model %d", tok.VocabSize(), cfg.Vocab)
	}
	tk := task{m: m}
	for _, f := range []struct {
		name string
		ds   **dataset.Dataset
	}{{defaults.TrainFile, &tk.train}, {defaults.EvalFile, &tk.eval}} {
		ds, skipped, err := dataset.Load(filepath.Join(dir, f.name), tok, cfg.MaxPos)
		if err != nil {
			t.Fatal(err)
		}
		if skipped.Total() != 0 {
			t.Fatalf("%s: skipped %+v", f.name, skipped)
		}
		*f.ds = ds
	}
	return tk
}

func sequences(ds *dataset.Dataset, idx []int) []model.Sequence {
	seqs := make([]model.Sequence, len(idx))
	for i, k := range idx {
		r := ds.Record(k)
		seqs[i] = model.Sequence{Tokens: r.Tokens, LossFrom: r.LossStart}
	}
	return seqs
}

// evaluate returns the mean loss per completion token on the eval set and
// the fraction of eval records whose completion is the model's greedy
// choice at every position.
func (tk task) evaluate(t *testing.T) (loss, acc float64) {
	t.Helper()
	all := make([]int, tk.eval.Len())
	for i := range all {
		all[i] = i
	}
	loss, _, err := tk.m.Loss(sequences(tk.eval, all))
	if err != nil {
		t.Fatal(err)
	}
	v := tk.m.Config().Vocab
	right := 0
	for i := range tk.eval.Len() {
		r := tk.eval.Record(i)
		logits, err := tk.m.Logits(r.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for p := r.LossStart; p < len(r.Tokens); p++ {
			row := logits[(p-1)*v : p*v]
			best := 0
			for j, x := range row {
				if x > row[best] {
					best = j
				}
			}
			ok = ok && best == r.Tokens[p]
		}
		if ok {
			right++
		}
	}
	return loss, float64(right) / float64(tk.eval.Len())
}

type batchLoss struct {
	m    *model.Model
	seqs []model.Sequence
}

func (b batchLoss) Loss() (float64, error) {
	l, _, err := b.m.Loss(b.seqs)
	return l, err
}

// settings are the knobs of a fine-tuning run.
type settings struct {
	cfg            zo.Config
	batch, samples int
	steps, every   int
}

// recommended are defaults' settings.
func recommended(steps, every int) settings {
	return settings{defaults.Config("defaults-test"), defaults.BatchSize, defaults.Samples, steps, every}
}

// finetune runs ZO-SGD as one machine of a run does: a step estimates
// s.samples projected gradients on the same weights, each on its own
// mini-batch, codes them in one byte each with a shared exponent and
// applies them together. report is called every s.every steps with the
// views in sync.
func (tk task) finetune(t *testing.T, s settings, report func(step int)) {
	t.Helper()
	var specs []zo.TensorSpec
	for _, p := range tk.m.Params() {
		specs = append(specs, zo.TensorSpec(p))
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.cfg
	e, err := zo.NewEngine(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	e.SyncViews() // the views now hold the base weights as quantised onto the grid
	report(0)
	const machine = 1
	idx := make([]int, s.batch)
	g := make([]float64, s.samples)
	u := make([]float64, s.samples)
	codes := make([]int8, s.samples)
	us := make([]zo.Update, s.samples)
	for step := 1; step <= s.steps; step++ {
		first := uint64((step - 1) * s.samples)
		for k := range g {
			sample := first + uint64(k)
			for j := range idx {
				idx[j] = tk.train.Sample(cfg.Run, machine, sample*uint64(len(idx))+uint64(j))
			}
			seed := zo.DeriveSeed(cfg.Run, machine, sample)
			res, err := e.Step(batchLoss{tk.m, sequences(tk.train, idx)}, seed)
			if err != nil {
				t.Fatal(err)
			}
			g[k], u[k] = res.G, seed.CodeUniform()
		}
		exp, err := zo.Quantize(g, u, codes)
		if err != nil {
			t.Fatal(err)
		}
		for k := range us {
			us[k] = zo.Update{Machine: machine, Sample: first + uint64(k), Exp: exp, Code: codes[k]}
		}
		e.Apply(us)
		if step%s.every == 0 {
			e.SyncViews()
			report(step)
		}
	}
	e.SyncViews()
}

// The embedded files load, agree with each other, and a few ZO steps with
// the recommended settings already lower the held-out loss.
func TestEmbedded(t *testing.T) {
	for _, name := range []string{defaults.ConfigFile, defaults.WeightsFile, defaults.TokenizerFile, defaults.TrainFile, defaults.EvalFile} {
		if _, err := fs.Stat(defaults.FS(), name); err != nil {
			t.Error(err)
		}
	}
	tk := load(t)
	if tk.train.Len() == 0 || tk.eval.Len() == 0 {
		t.Fatalf("%d train and %d eval records", tk.train.Len(), tk.eval.Len())
	}
	var n int
	for _, p := range tk.m.Params() {
		n += len(p.Data)
	}
	t.Logf("%d parameters, %d train and %d eval records", n, tk.train.Len(), tk.eval.Len())
	var first, last float64
	tk.finetune(t, recommended(4, 2), func(step int) {
		loss, acc := tk.evaluate(t)
		t.Logf("step %d: eval loss %.4f, accuracy %.3f", step, loss, acc)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			t.Fatalf("step %d: eval loss %v", step, loss)
		}
		if step == 0 {
			first = loss
		}
		last = loss
	})
	if last >= first {
		t.Errorf("eval loss %.4f -> %.4f after 4 steps", first, last)
	}
}

// ZO fine-tuning with the recommended settings lowers the held-out loss
// clearly and makes the model answer in the requested style.
func TestFineTuneImproves(t *testing.T) {
	if testing.Short() {
		t.Skip("runs defaults.Steps ZO steps")
	}
	tk := load(t)
	var loss0, acc0, loss, acc float64
	tk.finetune(t, recommended(defaults.Steps, defaults.Steps/10), func(step int) {
		loss, acc = tk.evaluate(t)
		if step == 0 {
			loss0, acc0 = loss, acc
		}
		t.Logf("step %d: eval loss %.4f, accuracy %.3f", step, loss, acc)
	})
	t.Logf("eval loss %.4f -> %.4f, accuracy %.3f -> %.3f after %d steps", loss0, loss, acc0, acc, defaults.Steps)
	if loss > loss0-minGain {
		t.Errorf("eval loss %.4f -> %.4f: want a drop of at least %.2f nats", loss0, loss, minGain)
	}
	if acc < acc0+minAccGain {
		t.Errorf("accuracy %.3f -> %.3f: want a gain of at least %.2f", acc0, acc, minAccGain)
	}
}

// Margins the long test asserts, well inside what docs/DEFAULT.md reports.
const (
	minGain    = 1.0
	minAccGain = 0.5
)
