package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/dataset"
	"github.com/zopeer/zopeer/model/defaults"
	"github.com/zopeer/zopeer/model/tokenizer"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// Settings are the knobs of a training run. Defaults holds every default;
// the CLI declares its flags from it.
type Settings struct {
	Home      string  // where the update log and checkpoints live
	Model     string  // Hugging Face model directory with tokenizer.json
	Data      string  // training data (.jsonl or .txt)
	EvalData  string  // held-out data; empty: hold out HeldOut of Data
	HeldOut   float64 // fraction of Data held out when EvalData is empty
	Run       string  // run identifier (part of every seed)
	Dist      string  // perturbation distribution: rademacher or gauss4
	Eps       float64 // perturbation scale ε
	LR        float64 // learning rate η
	LRWarmup  uint64  // samples (per machine) over which η ramps up; 0: none
	LRDecay   uint64  // sample index (per machine) at which η has decayed linearly to 0; 0: none
	Pool      uint32  // pool of seeds K (FedKSeed, docs/PROTOCOL.md §12); 0: every update has its own seed
	Trainable string  // regexp over parameter names; empty trains all
	Estimator string  // estimator rule (ResolveEstimator); "" or "mezo": MeZO
	BatchSize int     // records per projected gradient
	Samples   int     // projected gradients per step (one exponent byte each)
	Steps     int     // steps this invocation runs; 0 runs until interrupted
	EvalEvery int     // steps between evaluations; 0 evaluates only at the ends
	CkptEvery int     // steps between checkpoints; 0 checkpoints only at the end
	Context   int     // tokens per record at most; 0 uses the model's context
	Window    bool    // split records longer than the context into windows instead of truncating them
	Overlap   int     // tokens a window repeats from the one before (with Window)
	Machine   uint64  // this machine's id in the run
	Export    string  // write the trained model here at the end (HF layout)

	// Where the base model comes from, as `zopeer init` records it in the
	// manifest (store.ModelSource); embedded is set by WithEmbeddedDefault.
	ModelName     string // e.g. a Hugging Face repository id
	ModelRevision string // e.g. a commit or tag
	embedded      bool

	estimator *store.EstimatorSpec // the run's estimator, resolved or from its manifest

	// Admission and bounds of a run (manifest fields; docs/DESIGN.md, "Open runs").
	GradBound  float64  // |ĝ| bound of every update; 0: none (zopeer init calibrates it)
	MaxSamples uint64   // per-machine cap on sample indices; 0: none
	Admission  string   // "open" or "closed"
	PowBits    int      // open runs: proof of work of every contributing key
	Admit      []string // closed runs: the admitted machine ids (16 hex digits)

	// PublicData makes `zopeer init` declare the training data public
	// (docs/PROTOCOL.md §11): the manifest then carries its digest, the batch
	// size and the verification tolerance, and peers re-verify each other.
	PublicData bool
	// public is the run's public-data member once a manifest is applied.
	public *store.PublicData

	// PoolChoices is FedKSeed-Pro's m (docs/PROTOCOL.md §12.1): each update
	// picks its pool seed among m candidates; 0: the uniform rule.
	PoolChoices uint32
}

// Defaults are the settings `zopeer train` uses when nothing else is given:
// the hyperparameters measured for the embedded default (docs/DEFAULT.md).
var Defaults = Settings{
	Home:      "zopeer-home",
	HeldOut:   0.1,
	Run:       "zopeer-default",
	Dist:      defaults.Dist.String(),
	Eps:       defaults.Eps,
	LR:        defaults.LR,
	BatchSize: defaults.BatchSize,
	// 64 projected gradients per step travel as one signed message of
	// 3.75 bytes per gradient with all framing (docs/BENCHMARKS.md, p2p); on
	// the default task 25 steps of 64 train as well as 100 of 16 (same updates).
	Samples:   64,
	Steps:     defaults.Steps * defaults.Samples / 64,
	EvalEvery: 20,
	CkptEvery: 50,
}

// InitDefaults are the admission settings `zopeer init` gives a new run on
// top of Defaults (`zopeer train` runs alone and sets none): an open run,
// 2^22 samples per machine at most, and a proof of work of 20 bits per key,
// about 13 CPU-seconds of minting on the project's 2-core machines
// (docs/DESIGN.md, "Open runs"). GradBound 0 is calibrated at init.
var InitDefaults = func() Settings {
	s := Defaults
	s.Admission, s.MaxSamples, s.PowBits = store.AdmissionOpen, 1<<22, 20
	return s
}()

// WithEmbeddedDefault points Model and the data at the embedded default model
// and task, written under Home, when neither Model nor Data is given.
func (s Settings) WithEmbeddedDefault() (Settings, error) {
	if s.Model != "" || s.Data != "" {
		if s.Model == "" || s.Data == "" {
			return s, errors.New("node: give both a model and data, or neither for the embedded default")
		}
		return s, nil
	}
	dir := filepath.Join(s.Home, "default-model")
	if err := defaults.WriteTo(dir); err != nil {
		return s, err
	}
	s.Model, s.Data, s.embedded = dir, filepath.Join(dir, defaults.TrainFile), true
	if s.EvalData == "" {
		s.EvalData = filepath.Join(dir, defaults.EvalFile)
	}
	return s, nil
}

// quantScheme names the update code and weight grid of docs/PROTOCOL.md v1.
const quantScheme = "zo1-byte-bfp/int32-grid28"

// OpenModel loads a model directory and its tokenizer, checking that they agree.
func OpenModel(dir string) (*model.Model, *tokenizer.Tokenizer, error) {
	lm, err := model.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	if err := checkFinite(lm); err != nil {
		return nil, nil, fmt.Errorf("node: %s: %w", dir, err)
	}
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, nil, err
	}
	if err := tok.CheckModelVocab(lm.Config().Vocab); err != nil {
		return nil, nil, fmt.Errorf("node: %s: %w", dir, err)
	}
	return lm, tok, nil
}

// checkFinite refuses weights that hold NaN or ±Inf: every loss would be
// NaN or +Inf, and ZO steps on them are meaningless.
func checkFinite(lm *model.Model) error {
	for _, p := range lm.Params() {
		for i, v := range p.Data {
			if v != v || v > math.MaxFloat32 || v < -math.MaxFloat32 {
				return fmt.Errorf("weight %s[%d] is %v: the model's weights must be finite", p.Name, i, v)
			}
		}
	}
	return nil
}

// LoadData reads a dataset, logging what was skipped, truncated or split
// into windows.
func LoadData(path string, tok *tokenizer.Tokenizer, contextLen int, o dataset.Options, log *slog.Logger) (*dataset.Dataset, error) {
	d, sk, err := dataset.LoadWith(path, tok, contextLen, o)
	if err != nil {
		return nil, err
	}
	if n := sk.Blank + sk.Malformed + sk.Empty + sk.NoTargets; n > 0 {
		log.Warn("skipped records", "file", path, "malformed", sk.Malformed, "empty", sk.Empty,
			"no_targets", sk.NoTargets, "blank", sk.Blank, "examples", sk.Examples)
	}
	st := d.Stats()
	if st.Truncated > 0 {
		log.Warn("records longer than the context were truncated (--window splits them into windows instead)",
			"file", path, "context", contextLen, "truncated", st.Truncated, "of", st.Entries, "dropped_tokens", st.DroppedTokens)
	}
	if st.Split > 0 {
		log.Info("records longer than the context were split into windows", "file", path, "context", contextLen,
			"split", st.Split, "of", st.Entries, "windows", st.Windows, "records", d.Len())
	}
	return d, nil
}

// Run is a training run opened from Settings: model, data, engine and log.
type Run struct {
	Settings Settings
	Model    *model.Model
	Engine   *zo.Engine
	Log      *store.Store
	Trainer  *Trainer
	log      *slog.Logger
}

// Manifest is the run manifest these settings and base weights imply.
func (s Settings) Manifest(base [32]byte) store.Manifest {
	return store.Manifest{
		Run: s.Run, BaseDigest: base, Dist: s.Dist, Eps: s.Eps, LR: s.LR, LRWarmup: s.LRWarmup, LRDecay: s.LRDecay, Pool: s.Pool, PoolChoices: s.PoolChoices, Quant: quantScheme,
		Params:    map[string]string{"trainable": s.Trainable},
		Model:     s.modelSource(false),
		GradBound: s.GradBound, MaxSamples: s.MaxSamples, Admission: s.Admission, PowBits: s.PowBits, Admit: s.Admit,
		Data:      s.public,
		Estimator: s.estimator,
	}
}

// OpenRun loads everything and rebuilds the weights from the log in s.Home.
// With want (the run's manifest), the local base model must be the run's.
func OpenRun(ctx context.Context, s Settings, want *store.Manifest, log *slog.Logger) (*Run, error) {
	return openRun(ctx, s, want, log, false)
}

// openRun is OpenRun; with memory, the log lives in memory (s.Home unused).
func openRun(ctx context.Context, s Settings, want *store.Manifest, log *slog.Logger, memory bool) (*Run, error) {
	rep := progressFrom(ctx)
	rep(Progress{Task: "load", Unit: "model"})
	lm, tok, err := OpenModel(s.Model)
	if err != nil {
		return nil, err
	}
	rep(Progress{Task: "load", Done: 1, Total: 1, Unit: "model", Finished: true})
	ctxLen := s.Context
	if ctxLen <= 0 || ctxLen > lm.Config().MaxPos {
		ctxLen = lm.Config().MaxPos
	}
	opts := dataset.Options{Window: s.Window, Overlap: s.Overlap}
	data, err := LoadData(s.Data, tok, ctxLen, opts, log)
	if err != nil {
		return nil, err
	}
	train, held := data, (*dataset.Dataset)(nil)
	if s.EvalData != "" {
		if held, err = LoadData(s.EvalData, tok, ctxLen, opts, log); err != nil {
			return nil, err
		}
	} else if train, held, err = data.Split(s.HeldOut); err != nil {
		return nil, fmt.Errorf("node: %s: %w", s.Data, err)
	}
	if held.Len() == 0 {
		return nil, errors.New("node: the held-out set is empty: give --eval-data or a larger --held-out")
	}
	specs, err := TrainableSpecs(lm, s.Trainable)
	if err != nil {
		return nil, err
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		return nil, err
	}
	if s, err = s.withEstimator(w, lm); err != nil {
		return nil, err
	}
	m := s.Manifest(w.Hash())
	if est := m.Estimator; est != nil {
		log.Info("estimator", "parts", est.Parts, "scale", est.Scale, "onesided", est.OneSided)
	}
	if want != nil {
		if m.BaseDigest != want.BaseDigest {
			return nil, fmt.Errorf("node: base model %s has digest %x but run %q was created from %s%s (base digest %x): refusing to train on another model; "+
				"fetch it and give --model DIR", s.Model, m.BaseDigest, want.Run, want.Model, sourceDetail(want.Model), want.BaseDigest)
		}
		if m.Quant != want.Quant {
			return nil, fmt.Errorf("node: run %q uses update scheme %q, this zopeer speaks %q", want.Run, want.Quant, m.Quant)
		}
	}
	if pd := m.Data; pd != nil {
		if got := train.Digest(); got != pd.Digest {
			return nil, fmt.Errorf("node: run %q trains on public data with digest %x, but these training records have digest %x: "+
				"give the run's --data (and the same --held-out or --eval-data, --context and model)", s.Run, pd.Digest[:8], got[:8])
		}
	}
	cfg, err := m.Config()
	if err != nil {
		return nil, err
	}
	eng, err := zo.NewEngine(cfg, w)
	if err != nil {
		return nil, err
	}
	var st *store.Store
	if memory {
		st, err = store.OpenMemory(m, store.WithLogger(log.With("component", "store")))
	} else {
		if err := os.MkdirAll(s.Home, 0o755); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		st, err = store.Open(ctx, filepath.Join(s.Home, "store"), m, store.WithLogger(log.With("component", "store")))
	}
	if errors.Is(err, store.ErrManifest) || errors.Is(err, store.ErrOtherRun) {
		return nil, fmt.Errorf("node: %s holds a run made with another base model or other settings; "+
			"use the same --model and run settings, or another --home: %w", s.Home, err)
	}
	if err != nil {
		return nil, err
	}
	tr, res, err := NewTrainer(ctx, eng, lm, st, train, held, TrainerConfig{Machine: s.Machine, BatchSize: s.BatchSize, Samples: s.Samples, GradBound: s.GradBound, Public: m.Data},
		replayReporter(ctx, log))
	if err != nil {
		st.Close()
		return nil, err
	}
	log.Info("run opened", "run", s.Run, "model", s.Model, "params", countElems(specs), "train_records", train.Len(),
		"eval_records", held.Len(), "updates", res.Included.Count(), "checkpoint", res.Checkpoint,
		"weights_hash", fmt.Sprintf("%x", res.Hash[:8]))
	return &Run{Settings: s, Model: lm, Engine: eng, Log: st, Trainer: tr, log: log}, nil
}

func countElems(specs []zo.TensorSpec) (n int) {
	for _, s := range specs {
		if s.Trainable {
			n += len(s.Data)
		}
	}
	return n
}

// Close closes the log.
func (r *Run) Close() error { return r.Log.Close() }

// Train runs r.Settings.Steps steps (until ctx ends if 0), reporting progress,
// evaluating and checkpointing, and returns the eval losses at start and end.
func (r *Run) Train(ctx context.Context) (before, after float64, err error) {
	s, tr := r.Settings, r.Trainer
	if before, _, err = tr.Eval(ctx); err != nil {
		return 0, 0, err
	}
	r.log.Info("eval", "step", 0, "sample", tr.NextSample(), "eval_loss", fmt.Sprintf("%.4f", before))
	// The same history file `zopeer start` keeps (and serves), so a run's
	// curve continues whichever command trains it.
	var hist watch
	if s.Home != "" {
		hist.open(s.Home)
	}
	point := func(eval float64, train *float64, forwards uint64) {
		st := r.Log.Stats()
		hist.record(Point{Time: float64(time.Now().UnixMilli()) / 1000, Updates: st.Updates,
			Own: r.Log.Held(s.Machine).Count(), EvalLoss: eval, TrainLoss: train, Forwards: forwards})
	}
	point(before, nil, 0)
	after = before
	start := time.Now()
	var losses lossMean
	var forwards uint64
	for step := 1; s.Steps == 0 || step <= s.Steps; step++ {
		res, err := tr.Step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break // interrupted: everything logged so far is durable
			}
			return before, after, err
		}
		losses.add(res.Loss)
		forwards += tr.Forwards(len(res.Codes))
		last := s.Steps != 0 && step == s.Steps
		if (s.EvalEvery > 0 && step%s.EvalEvery == 0) || last {
			if after, _, err = tr.Eval(ctx); err != nil {
				return before, after, err
			}
			el := time.Since(start).Seconds()
			train := losses.take()
			r.log.Info("step", "step", step, "updates", r.Log.Stats().Updates, "loss", fmt.Sprintf("%.4f", *train),
				"eval_loss", fmt.Sprintf("%.4f", after), "steps_per_s", fmt.Sprintf("%.2f", float64(step)/el),
				"updates_per_s", fmt.Sprintf("%.1f", float64(step*s.Samples)/el))
			point(after, train, forwards)
		}
		if s.CkptEvery > 0 && step%s.CkptEvery == 0 && !last {
			if _, err := tr.Checkpoint(ctx); err != nil {
				return before, after, err
			}
		}
	}
	// A final checkpoint makes the next start replay nothing; it must not be
	// skipped because the run was interrupted, so it ignores ctx.
	if info, err := tr.Checkpoint(context.WithoutCancel(ctx)); err != nil {
		return before, after, err
	} else {
		r.log.Info("checkpoint", "updates", info.Updates, "weights_hash", fmt.Sprintf("%x", info.Hash[:8]))
	}
	if s.Export != "" {
		if err := r.Export(s.Export); err != nil {
			return before, after, err
		}
	}
	return before, after, nil
}

// Export writes the current weights as a Hugging Face directory, with the
// base model's tokenizer and generation files, in the base checkpoint's dtype.
func (r *Run) Export(dir string) error {
	if err := r.Trainer.Overflow(); err != nil {
		return fmt.Errorf("node: export: %w", err)
	}
	r.Engine.SyncViews()
	if err := writeExport(r.Model, r.Settings.Model, dir); err != nil {
		return err
	}
	r.log.Info("exported", "dir", dir, "dtype", r.Model.DType())
	return nil
}
