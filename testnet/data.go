package testnet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/zopeer/zopeer/model/dataset"
	"github.com/zopeer/zopeer/model/defaults"
	"github.com/zopeer/zopeer/node"
)

// Data is what the peers train on: one base model, a shard of the training
// records per peer, and one held-out set for all, so their eval losses are
// comparable.
type Data struct {
	Model  string   // base model directory (with tokenizer.json)
	Shards []string // training data of peer i: Shards[i % len(Shards)]
	Eval   string   // held-out data
	// Records are the peers' options for long records (--window), which
	// BaseLoss must share to measure the same held-out set.
	Records dataset.Options
}

func (d *Data) args(i int) []string {
	return []string{"--model", d.Model, "--data", d.Shards[i%len(d.Shards)], "--eval-data", d.Eval}
}

// WriteData splits the training records of train into k shards under dir
// (record j goes to shard j mod k). Empty model, train and eval stand for the
// embedded default model and its task, written under dir.
func WriteData(dir, model, train, eval string, k int) (*Data, error) {
	if k < 1 {
		return nil, fmt.Errorf("testnet: %d shards", k)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	if model == "" || train == "" || eval == "" {
		def := filepath.Join(dir, "default-model")
		if err := defaults.WriteTo(def); err != nil {
			return nil, err
		}
		if model == "" {
			model = def
		}
		if train == "" {
			train = filepath.Join(def, defaults.TrainFile)
		}
		if eval == "" {
			eval = filepath.Join(def, defaults.EvalFile)
		}
	}
	if !strings.HasSuffix(train, ".jsonl") {
		return nil, fmt.Errorf("testnet: training data %s: only .jsonl records can be sharded", train)
	}
	f, err := os.Open(train)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			lines = append(lines, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testnet: %s: %w", train, err)
	}
	if len(lines) < k {
		return nil, fmt.Errorf("testnet: %s has %d records, too few for %d shards", train, len(lines), k)
	}
	d := &Data{Model: model, Eval: eval}
	for i := range k {
		var b strings.Builder
		for j := i; j < len(lines); j += k {
			b.WriteString(lines[j])
			b.WriteByte('\n')
		}
		p := filepath.Join(dir, fmt.Sprintf("shard%d.jsonl", i))
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		d.Shards = append(d.Shards, p)
	}
	return d, nil
}

// BaseLoss is the eval loss of the base model: the mean loss per target token
// over the held-out set, before any update.
func (d *Data) BaseLoss(ctx context.Context, batch int) (float64, error) {
	lm, tok, err := node.OpenModel(d.Model)
	if err != nil {
		return 0, err
	}
	ds, err := node.LoadData(d.Eval, tok, lm.Config().MaxPos, d.Records, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, err
	}
	l, _, err := node.EvalLoss(ctx, nil, lm, ds, batch)
	return l, err
}
