package node

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zopeer/zopeer/internal/cputime"
	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/blas"
	"github.com/zopeer/zopeer/zo"
)

// Shapes are built-in model shapes for `zopeer bench` (random weights).
var Shapes = map[string]string{
	"gpt2-small": `{"model_type":"gpt2","vocab_size":50257,"n_embd":768,"n_layer":12,"n_head":12,"n_positions":1024}`,
	// A few-million-parameter GPT-2 (3.4M), for the fixed cost of a pass.
	"gpt2-3m":     `{"model_type":"gpt2","vocab_size":8192,"n_embd":192,"n_layer":4,"n_head":4,"n_positions":512}`,
	"smollm-135m": `{"model_type":"llama","vocab_size":49152,"hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"max_position_embeddings":8192,"rope_theta":100000,"tie_word_embeddings":true}`,
}

// BenchResult is what `zopeer bench` measures.
type BenchResult struct {
	Model          string  `json:"model"`
	Params         int     `json:"params"`
	BLAS           string  `json:"blas"`
	Threads        int     `json:"threads"` // GOMAXPROCS
	Tokens         int     `json:"tokens"`
	WarmupSeconds  float64 `json:"warmup_seconds"` // the untimed cold forward pass and ZO step
	ForwardSeconds float64 `json:"forward_seconds"`
	TokensPerSec   float64 `json:"tokens_per_second"`
	GFLOPs         float64 `json:"gflop_per_second"`
	// A ZO step as a peer runs it (zo.Engine.ApplyStep): two forward passes
	// at θ±εz (views derived layer by layer), the first applying the
	// previous step's update to the int32 weights as it derives them.
	StepSeconds float64 `json:"zo_step_seconds"`
	StepOverFwd float64 `json:"zo_step_over_forward"`
	// The same step with the update applied on its own first (Apply, then
	// Step: one more pass over the int32 weights), as peers ran it before;
	// timed alternately with the fused one.
	StepSeparateSeconds float64 `json:"zo_step_separate_seconds"`
	StepSeparateOverFwd float64 `json:"zo_step_separate_over_forward"`
	// Process CPU time (user + system) per forward pass and per step, fused
	// and separate: steadier than wall time on a shared machine (0 where
	// unknown).
	ForwardCPUSeconds      float64 `json:"forward_cpu_seconds"`
	StepCPUSeconds         float64 `json:"zo_step_cpu_seconds"`
	StepSeparateCPUSeconds float64 `json:"zo_step_separate_cpu_seconds"`
	// The same per sample for a proposal of --reps samples (a peer's
	// --samples, default 64): --reps steps, the first applying the previous
	// proposal's --reps updates.
	StepBatchedSeconds float64 `json:"zo_step_batched_seconds"`
	StepBatchedOverFwd float64 `json:"zo_step_batched_over_forward"`
	Apply1NsElem       float64 `json:"apply_1_ns_per_element"`
	Apply16NsElem      float64 `json:"apply_16_ns_per_element"`
	PeakForwardMiB     float64 `json:"peak_rss_forward_mib"`
	PeakStepMiB        float64 `json:"peak_rss_zo_step_mib"`
	RSSWeightsMiB      float64 `json:"rss_weights_only_mib"` // the process holding the weights, before any pass
	WeightsMiB         float64 `json:"weights_mib"`          // the int32 weights: the only copy held
	WorkingSetMiB      float64 `json:"working_set_mib"`      // the forward pass's activations and weight buffers
}

// Bench loads dir (or builds a random model of a built-in shape) and measures
// it as a peer runs it (the model streams its weights from the engine):
// reps forward passes of one n-token sequence, reps ZO steps, fused applies
// over the model's layout, and peak memory.
func Bench(ctx context.Context, dirOrShape string, n, reps int) (BenchResult, error) {
	var lm *model.Model
	res := BenchResult{Model: dirOrShape, Tokens: n, Threads: runtime.GOMAXPROCS(0)}
	if js, ok := Shapes[dirOrShape]; ok {
		cfg, err := model.ParseConfig([]byte(js))
		if err != nil {
			return res, err
		}
		lm = model.NewRandom(cfg, 1)
	} else {
		var err error
		if lm, err = model.Load(dirOrShape); err != nil {
			return res, err
		}
	}
	cfg := lm.Config()
	if n < 2 || n > cfg.MaxPos {
		return res, fmt.Errorf("node: bench: --tokens must be in [2, %d]", cfg.MaxPos)
	}
	b := blas.Current()
	res.BLAS = strings.TrimSpace(b.Name + " " + b.CoreName)
	r := rand.New(rand.NewPCG(1, 1))
	seq := model.Sequence{Tokens: make([]int, n)}
	for i := range seq.Tokens {
		seq.Tokens[i] = r.IntN(cfg.Vocab)
	}
	batch := model.Batch{Model: lm, Seqs: []model.Sequence{seq}}
	specs, err := TrainableSpecs(lm, "")
	if err != nil {
		return res, err
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		return res, err
	}
	elems := countElems(specs)
	res.Params = elems
	res.WeightsMiB = float64(4*elems) / (1 << 20)
	e, err := zo.NewEngine(zo.Config{Run: "bench", Eps: 1e-3, LR: 1e-6}, w)
	if err != nil {
		return res, err
	}
	specs = nil
	lm.SetSource(e)
	w.DropViews()
	resetPeakRSS()
	res.RSSWeightsMiB = rssMiB("VmRSS:")

	// One untimed forward pass and ZO step first: the cold pass (page
	// faults on the weights, buffer allocation, BLAS start-up) is not what
	// a running peer sees.
	warm := time.Now()
	if _, err := batch.Loss(); err != nil {
		return res, err
	}
	s := zo.DeriveSeed("bench", 0, 0)
	sr, err := e.Step(batch, s)
	if err != nil {
		return res, err
	}
	u, err := benchUpdate(0, 0, s, sr)
	if err != nil {
		return res, err
	}
	res.WarmupSeconds = time.Since(warm).Seconds()

	// Peak memory of forward passes alone, then (below) of a proposal's ZO
	// steps, each from a collected heap. Times are medians of passes and
	// steps taken alternately, so that a change of load on a shared machine
	// hits both alike.
	resetPeakRSS()
	for range 2 {
		if _, err := batch.Loss(); err != nil {
			return res, err
		}
	}
	res.PeakForwardMiB = peakRSSMiB()

	// ZO steps as a peer runs them with --samples 1: each step applies the
	// previous step's update in its first forward pass; and, alternately,
	// the same with the update applied on its own first.
	var fwd, fwdCPU, steps, stepsCPU, sep, sepCPU []float64
	timed := func(wall, cpu *[]float64, fn func() error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		start, c0 := time.Now(), cputime.Now()
		if err := fn(); err != nil {
			return err
		}
		*wall, *cpu = append(*wall, time.Since(start).Seconds()), append(*cpu, (cputime.Now()-c0).Seconds())
		return nil
	}
	own := make([]zo.Update, reps)
	pending := []zo.Update{u}
	separate := []zo.Update{{Machine: 5, Sample: 0, Exp: u.Exp, Code: u.Code}}
	for i := range reps {
		for range 2 {
			if err := timed(&fwd, &fwdCPU, func() error { _, err := batch.Loss(); return err }); err != nil {
				return res, err
			}
		}
		fused := func() error {
			s := zo.DeriveSeed("bench", 1, uint64(i))
			sr, err := e.ApplyStep(pending, batch, s)
			if err != nil {
				return err
			}
			own[i], err = benchUpdate(1, uint64(i), s, sr)
			pending = own[i : i+1]
			return err
		}
		apart := func() error {
			e.Apply(separate)
			s := zo.DeriveSeed("bench", 5, uint64(i+1))
			sr, err := e.Step(batch, s)
			if err != nil {
				return err
			}
			separate[0], err = benchUpdate(5, uint64(i+1), s, sr)
			return err
		}
		first, second := fused, apart
		fw, fc, sw, scpu := &steps, &stepsCPU, &sep, &sepCPU
		if i%2 == 1 { // alternate the order: neither always runs right after the forward passes
			first, second = apart, fused
			fw, fc, sw, scpu = sw, scpu, fw, fc
		}
		if err := timed(fw, fc, first); err != nil {
			return res, err
		}
		if err := timed(sw, scpu, second); err != nil {
			return res, err
		}
	}
	res.StepSeconds, res.StepCPUSeconds = median(steps), median(stepsCPU)
	res.StepSeparateSeconds, res.StepSeparateCPUSeconds = median(sep), median(sepCPU)
	res.ForwardCPUSeconds = median(fwdCPU)
	e.Apply(separate)
	// A proposal of reps samples: the first step applies the previous
	// proposal's reps updates (here the codes above, as another machine's).
	// The peak memory of a ZO step is taken over it, as peers run steps:
	// the apart steps above leave the separate applies' garbage behind.
	e.Apply(pending)
	resetPeakRSS()
	pending = make([]zo.Update, reps)
	for i, u := range own {
		pending[i] = zo.Update{Machine: 2, Sample: u.Sample, Exp: u.Exp, Code: u.Code}
	}
	start := time.Now()
	for i := range reps {
		if _, err := e.ApplyStep(pending, batch, zo.DeriveSeed("bench", 3, uint64(i))); err != nil {
			return res, err
		}
		pending = nil
	}
	res.StepBatchedSeconds = time.Since(start).Seconds() / float64(reps)
	res.PeakStepMiB = peakRSSMiB()
	res.WorkingSetMiB = float64(lm.WorkingSetBytes()) / (1 << 20)
	res.ForwardSeconds = median(fwd)
	res.TokensPerSec = float64(n) / res.ForwardSeconds
	res.GFLOPs = model.ForwardFLOPs(cfg, n) / res.ForwardSeconds / 1e9

	// Separate applies, for comparison with the ones fused into the steps.
	for _, k := range []int{1, 16} {
		us := make([]zo.Update, k)
		for j := range us {
			// ĝ = 0.5: a coefficient of thousands of grid units on every tensor
			// (a negligible ĝ rounds to 0 and the engine skips the tensor).
			us[j] = zo.Update{Machine: 4, Sample: uint64(j), Exp: 121, Code: 64}
		}
		start := time.Now()
		for range reps {
			e.Apply(us)
		}
		ns := float64(time.Since(start).Nanoseconds()) / float64(reps) / float64(elems)
		if k == 1 {
			res.Apply1NsElem = ns
		} else {
			res.Apply16NsElem = ns
		}
	}
	res.StepOverFwd = res.StepSeconds / res.ForwardSeconds
	res.StepSeparateOverFwd = res.StepSeparateSeconds / res.ForwardSeconds
	res.StepBatchedOverFwd = res.StepBatchedSeconds / res.ForwardSeconds
	return res, nil
}

// benchUpdate is the update a step's result codes to.
func benchUpdate(machine, sample uint64, s zo.Seed, sr zo.StepResult) (zo.Update, error) {
	var code [1]int8
	exp, err := zo.Quantize([]float64{sr.G}, []float64{s.CodeUniform()}, code[:])
	if err != nil {
		return zo.Update{}, fmt.Errorf("node: bench: %w", err)
	}
	return zo.Update{Machine: machine, Sample: sample, Exp: exp, Code: code[0]}, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// resetPeakRSS returns freed memory to the OS and resets the kernel's peak-RSS
// mark (Linux; elsewhere only the first).
func resetPeakRSS() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMiB is the peak resident set since the last reset (0 where unknown).
func peakRSSMiB() float64 { return rssMiB("VmHWM:") }

// rssMiB reads a field of /proc/self/status (0 where unknown).
func rssMiB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
