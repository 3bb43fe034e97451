package node

import (
	"context"
	"strings"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/dataset"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// byteEncoder maps each byte to a token of the fixture's 61-token vocabulary.
type byteEncoder struct{}

func (byteEncoder) Encode(text string, _ bool) ([]int, error) {
	ids := make([]int, len(text))
	for i := range len(text) {
		ids[i] = int(text[i]) % 61
	}
	return ids, nil
}

const fixture = "../model/testdata/gpt2"

func testData(t *testing.T) (*dataset.Dataset, *dataset.Dataset) {
	t.Helper()
	var b strings.Builder
	for _, s := range []string{"the cat sat", "a dog ran far", "hello world", "zeroth order", "one byte each",
		"seeds are shared", "peers gossip", "all hashes equal"} {
		b.WriteString(`{"prompt": "q: ` + s[:3] + `", "completion": "` + s + `"}` + "\n")
	}
	d, _, err := dataset.ReadJSONL(strings.NewReader(b.String()), byteEncoder{}, 24)
	if err != nil {
		t.Fatal(err)
	}
	return d, d
}

func testRun() store.Manifest {
	return store.Manifest{Run: "node-test", Dist: "rademacher", Eps: 1e-3, LR: 1e-4, Quant: "zo1"}
}

func newEngine(t testing.TB, lm *model.Model, m store.Manifest, pattern string) *zo.Engine {
	t.Helper()
	specs, err := TrainableSpecs(lm, pattern)
	if err != nil {
		t.Fatal(err)
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Config()
	if err != nil {
		t.Fatal(err)
	}
	e, err := zo.NewEngine(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newTrainer(t *testing.T, log *store.Store, m store.Manifest) (*Trainer, *zo.Engine) {
	t.Helper()
	lm, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, lm, m, "")
	train, eval := testData(t)
	tr, _, err := NewTrainer(context.Background(), e, lm, log, train, eval, TrainerConfig{Machine: 7, BatchSize: 2, Samples: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr, e
}

// Training, then resuming from the on-disk log, gives the weights an
// independent engine gets by applying the logged set of updates.
func TestTrainResumeAndRebuild(t *testing.T) {
	ctx := context.Background()
	m := testRun()
	dir := t.TempDir()
	log, err := store.Open(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	tr, e := newTrainer(t, log, m)
	before, _, err := tr.Eval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := tr.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	tr.Flush() // the last step's updates wait for the next step's first pass
	hash := e.Weights().Hash()
	if got := log.Stats().Updates; got != 16 || tr.NextSample() != 16 {
		t.Fatalf("log holds %d updates, next sample %d; want 16 and 16", got, tr.NextSample())
	}
	after, _, err := tr.Eval(ctx)
	if err != nil || after == before {
		t.Fatalf("eval %v → %v (err %v): training did not change the model", before, after, err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	log, err = store.Open(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	tr2, e2 := newTrainer(t, log, m)
	if e2.Weights().Hash() != hash || tr2.NextSample() != 16 {
		t.Fatalf("resumed: hash differs or next sample %d", tr2.NextSample())
	}

	// Independent rebuild: fresh base weights plus every logged update.
	lm, _ := model.Load(fixture)
	e3 := newEngine(t, lm, m, "")
	var us []zo.Update
	for u, err := range log.Updates(ctx, store.Key{}) {
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	e3.Apply(us)
	if e3.Weights().Hash() != hash {
		t.Fatal("applying the logged set to the base weights gives another hash")
	}
}

// An update contradicting the log is neither logged nor applied.
func TestApplyIgnoresEquivocation(t *testing.T) {
	ctx := context.Background()
	m := testRun()
	log, err := store.OpenMemory(m)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	tr, e := newTrainer(t, log, m)
	good := zo.Update{Machine: 3, Sample: 0, Exp: 120, Code: 50}
	if _, err := tr.Apply(ctx, nil, []zo.Update{good}); err != nil {
		t.Fatal(err)
	}
	h := e.Weights().Hash()
	bad := good
	bad.Code = -50
	eqs, err := tr.Apply(ctx, nil, []zo.Update{bad, good})
	if err != nil {
		t.Fatal(err)
	}
	if len(eqs) != 1 || eqs[0].Offered != bad {
		t.Fatalf("equivocations %+v, want the bad update", eqs)
	}
	if e.Weights().Hash() != h {
		t.Fatal("an equivocating or repeated update changed the weights")
	}
	if u, _, _ := log.Get(3, 0); u != good {
		t.Fatalf("log holds %+v", u)
	}
}

func TestTrainableSpecs(t *testing.T) {
	lm, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := TrainableSpecs(lm, `ln_f`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range specs {
		if s.Trainable {
			n++
			if !strings.Contains(s.Name, "ln_f") {
				t.Errorf("%s is trainable", s.Name)
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing trainable")
	}
	if _, err := TrainableSpecs(lm, `nomatch`); err == nil {
		t.Error("a pattern matching nothing must be an error")
	}
	if _, err := TrainableSpecs(lm, `(`); err == nil {
		t.Error("a bad pattern must be an error")
	}
}
