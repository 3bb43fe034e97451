// Package defaults ships zopeer's built-in model and fine-tuning task, so
// that training works on a fresh machine with no arguments and no
// downloads: a 2-layer GPT-2 pretrained on a synthetic language, its
// byte-level BPE tokenizer, and a prompt/completion task on which
// zeroth-order fine-tuning visibly lowers the held-out loss within minutes
// on two CPU cores. The files are regenerated, from a fixed seed, by
// `go run ./model/defaults/gen`; docs/DEFAULT.md describes the language,
// the task, the pretraining and the measured fine-tuning result.
package defaults

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/zopeer/zopeer/zo"
)

// Files, all in one directory: a Hugging Face model directory (config.json,
// model.safetensors, tokenizer.json) that also holds the task's data.
const (
	ConfigFile    = "config.json"
	WeightsFile   = "model.safetensors"
	TokenizerFile = "tokenizer.json"
	TrainFile     = "train.jsonl" // {"prompt", "completion"} records to fine-tune on
	EvalFile      = "eval.jsonl"  // held-out records: things the training records never mention
)

//go:embed data
var data embed.FS

// FS returns the embedded files, flat, under the names above.
func FS() fs.FS {
	sub, err := fs.Sub(data, "data")
	if err != nil {
		panic(err) // "data" is a valid path, checked at compile time by go:embed
	}
	return sub
}

// WriteTo writes every embedded file into dir, creating it, so that
// model.Load(dir), tokenizer.Load(filepath.Join(dir, TokenizerFile)) and
// dataset.Load(filepath.Join(dir, TrainFile), ...) read them. Existing files
// of the same names are replaced.
func WriteTo(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("defaults: %w", err)
	}
	return fs.WalkDir(FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("defaults: %w", err)
		}
		if d.IsDir() {
			return nil
		}
		b, err := fs.ReadFile(FS(), name)
		if err != nil {
			return fmt.Errorf("defaults: %w", err)
		}
		// Write beside the target and rename, so a reader never sees a torn file.
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return fmt.Errorf("defaults: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("defaults: %w", err)
		}
		return nil
	})
}

// Recommended ZO fine-tuning settings for the default model and task,
// measured in docs/DEFAULT.md. Every parameter tensor is trained (as
// model.Params reports them). A step estimates Samples projected gradients
// on the same weights, each one SPSA estimate (two forward passes) on its
// own mini-batch of BatchSize training records, and applies them together.
const (
	Eps       = 1e-3
	LR        = 1e-4
	BatchSize = 16
	Samples   = 16
	Steps     = 100
	Dist      = zo.Rademacher
)

// Config is the engine configuration for a run of the default task.
func Config(run string) zo.Config {
	return zo.Config{Run: run, Dist: Dist, Eps: Eps, LR: LR}
}
