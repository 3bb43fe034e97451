package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/zopeer/zopeer/model/dataset"
	"github.com/zopeer/zopeer/model/tokenizer"
	"github.com/zopeer/zopeer/node"
	"github.com/zopeer/zopeer/zo"
)

// runFlags are the settings that decide the weights: they go into the run manifest.
func runFlags(fs *flag.FlagSet, s *node.Settings) {
	fs.StringVar(&s.Run, "run", s.Run, "run identifier; part of every seed and of the network topics")
	fs.StringVar(&s.Dist, "dist", s.Dist, "perturbation distribution: rademacher or gauss4")
	fs.Float64Var(&s.Eps, "eps", s.Eps, "perturbation scale ε")
	fs.Float64Var(&s.LR, "lr", s.LR, "learning rate η per update (a step applies --samples updates: ≈ samples × η per step)")
	fs.Uint64Var(&s.LRWarmup, "lr-warmup", s.LRWarmup, "ramp η up linearly over each machine's first N samples (0: off)")
	fs.Uint64Var(&s.LRDecay, "lr-decay", s.LRDecay, "decay η linearly to 0 at each machine's sample N (0: off)")
	fs.Func("pool", "pool of K seeds every update perturbs along (FedKSeed: catch-up costs K passes at most; 0: each update its own seed)", func(v string) error {
		k, err := strconv.ParseUint(v, 10, 32)
		if err != nil || k > zo.MaxPool {
			return fmt.Errorf("want 0..%d", zo.MaxPool)
		}
		s.Pool = uint32(k)
		return nil
	})
	fs.Func("pool-choices", "FedKSeed-Pro in a pool run: each update picks its pool seed among M candidates, favouring seeds with larger mean |ĝ| (2..min(K, 256); 0: the uniform rule; docs/PROTOCOL.md §12.1)", func(v string) error {
		m, err := strconv.ParseUint(v, 10, 32)
		if err != nil || m == 1 || m > zo.MaxPoolChoices {
			return fmt.Errorf("want 0 or 2..%d", zo.MaxPoolChoices)
		}
		s.PoolChoices = uint32(m)
		return nil
	})
	fs.StringVar(&s.Trainable, "trainable", s.Trainable, "regexp of parameter names to train (default: all)")
	fs.StringVar(&s.Estimator, "estimator", s.Estimator, "zeroth-order estimator: mezo (default), parts=N, onesided=Q, scale=vectors, scale=vectors-grad, scale=rms, scale=grad, comma-separated (docs/LEARNING.md)")
}

// localFlags are a node's own settings: where things are and how it trains.
func localFlags(fs *flag.FlagSet, s *node.Settings) {
	fs.StringVar(&s.Home, "home", s.Home, "directory for the update log, checkpoints and identity")
	fs.StringVar(&s.Model, "model", s.Model, "Hugging Face model directory with tokenizer.json (default: the embedded model)")
	fs.StringVar(&s.Data, "data", s.Data, "training data: .jsonl ({\"text\"} or {\"prompt\",\"completion\"}) or .txt (default: the embedded task)")
	fs.StringVar(&s.EvalData, "eval-data", s.EvalData, "held-out data (default: hold out --held-out of --data)")
	fs.Float64Var(&s.HeldOut, "held-out", s.HeldOut, "fraction of --data held out for evaluation when --eval-data is empty")
	fs.IntVar(&s.BatchSize, "batch-size", s.BatchSize, "records per projected gradient")
	fs.IntVar(&s.Samples, "samples", s.Samples, "projected gradients per step")
	fs.IntVar(&s.EvalEvery, "eval-every", s.EvalEvery, "steps between evaluations")
	fs.IntVar(&s.CkptEvery, "checkpoint-every", s.CkptEvery, "steps between checkpoints")
	fs.IntVar(&s.Context, "context", s.Context, "maximum tokens per record (0: the model's context)")
	fs.BoolVar(&s.Window, "window", s.Window, "split records longer than the context into windows instead of truncating them")
	fs.IntVar(&s.Overlap, "window-overlap", s.Overlap, "with --window, tokens each window repeats from the one before as context (≤ context/2)")
}

func trainCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	s := node.Defaults
	runFlags(fs, &s)
	localFlags(fs, &s)
	fs.IntVar(&s.Steps, "steps", s.Steps, "steps to run (0: until interrupted)")
	fs.Uint64Var(&s.Machine, "machine", s.Machine, "this machine's id in the run")
	fs.StringVar(&s.Export, "export", s.Export, "write the fine-tuned model to this directory at the end")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", args)}
		}
		s, err := s.WithEmbeddedDefault()
		if err != nil {
			return usageError{err}
		}
		r, err := node.OpenRun(node.WithProgress(ctx, progressBar(stderrOf(ctx))), s, nil, log)
		if err != nil {
			return err
		}
		defer r.Close()
		before, after, err := r.Train(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "eval loss %.4f → %.4f (%+.2f%%) over %d updates; weights hash %x\n",
			before, after, 100*(after-before)/before, r.Log.Stats().Updates, r.Engine.Weights().Hash())
		return nil
	}
}

func evalCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	dir := fs.String("model", "", "Hugging Face model directory with tokenizer.json")
	data := fs.String("data", "", "dataset: .jsonl or .txt")
	asJSON := fs.Bool("json", false, "print one JSON object")
	batch := fs.Int("batch-size", 8, "records per forward pass")
	ctxLen := fs.Int("context", 0, "maximum tokens per record (0: the model's context)")
	window := fs.Bool("window", false, "split records longer than the context into windows instead of truncating them")
	overlap := fs.Int("window-overlap", 0, "with --window, tokens each window repeats from the one before as context (≤ context/2)")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if *dir == "" || *data == "" || len(args) > 0 {
			return usageError{errors.New("usage: zopeer eval --model DIR --data FILE [--json]")}
		}
		if *batch < 1 {
			return usageError{errors.New("--batch-size must be ≥ 1")}
		}
		lm, tok, err := node.OpenModel(*dir)
		if err != nil {
			return err
		}
		n := *ctxLen
		if n <= 0 || n > lm.Config().MaxPos {
			n = lm.Config().MaxPos
		}
		d, err := node.LoadData(*data, tok, n, dataset.Options{Window: *window, Overlap: *overlap}, log)
		if err != nil {
			return err
		}
		loss, tokens, err := node.EvalLoss(ctx, nil, lm, d, *batch)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(map[string]any{
				"loss": loss, "tokens": tokens, "records": d.Len(), "perplexity": math.Exp(loss)})
		}
		fmt.Fprintf(out, "loss %.6f  tokens %d  records %d  perplexity %.3f\n", loss, tokens, d.Len(), math.Exp(loss))
		return nil
	}
}

func generateCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	dir := fs.String("model", "", "Hugging Face model directory with tokenizer.json")
	prompt := fs.String("prompt", "", "text to continue")
	n := fs.Int("tokens", 64, "tokens to generate")
	temp := fs.Float64("temperature", 0.8, "sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 40, "sample among the k most likely tokens (0: all)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if *dir == "" || len(args) > 0 {
			return usageError{errors.New("usage: zopeer generate --model DIR [--prompt TEXT]")}
		}
		if *n < 0 || *temp < 0 || *topK < 0 {
			return usageError{errors.New("--tokens, --temperature and --top-k must be ≥ 0")}
		}
		lm, tok, err := node.OpenModel(*dir)
		if err != nil {
			return err
		}
		ids, err := tok.Encode(*prompt, true)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return usageError{errors.New("the prompt encodes to no tokens and the tokenizer adds none: give --prompt")}
		}
		rng := rand.New(rand.NewPCG(*seed, 0))
		start := len(ids)
		for range *n {
			if ctx.Err() != nil || len(ids) >= lm.Config().MaxPos {
				break
			}
			logits, err := lm.Logits(ids)
			if err != nil {
				return err
			}
			v := lm.Config().Vocab
			ids = append(ids, sampleToken(logits[len(logits)-v:], *temp, *topK, rng))
		}
		text, err := continuation(tok, ids, start)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, *prompt+text)
		return nil
	}
}

// sampleToken draws from softmax(logits/temp) restricted to the top k.
func sampleToken(logits []float32, temp float64, k int, rng *rand.Rand) int {
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	if temp == 0 {
		return idx[0]
	}
	if k > 0 && k < len(idx) {
		idx = idx[:k]
	}
	p := make([]float64, len(idx))
	var sum float64
	for i, j := range idx {
		p[i] = math.Exp((float64(logits[j]) - float64(logits[idx[0]])) / temp)
		sum += p[i]
	}
	x := rng.Float64() * sum
	for i := range p {
		if x -= p[i]; x < 0 {
			return idx[i]
		}
	}
	return idx[len(idx)-1]
}

// continuation decodes the generated ids[start:] as they read after the
// prompt ids[:start]: decoding them alone loses the space a SentencePiece
// tokenizer (Llama's "▁") puts at the start of the first generated word,
// since a decoder strips the leading space of the text it decodes.
func continuation(tok *tokenizer.Tokenizer, ids []int, start int) (string, error) {
	all, err := tok.Decode(ids, true)
	if err != nil {
		return "", err
	}
	pre, err := tok.Decode(ids[:start], true)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(all, pre) {
		return all[len(pre):], nil
	}
	return tok.Decode(ids[start:], true)
}
