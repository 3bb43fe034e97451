package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func zopeer(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

var summary = regexp.MustCompile(`eval loss ([\d.]+) → ([\d.]+) .* weights hash ([0-9a-f]{64})`)

func train(t *testing.T, args ...string) (before, after float64, hash string) {
	t.Helper()
	code, out, errs := zopeer(t, append([]string{"train", "--log-level", "warn"}, args...)...)
	if code != 0 {
		t.Fatalf("zopeer train %v: exit %d\n%s", args, code, errs)
	}
	m := summary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in %q", out)
	}
	before, _ = strconv.ParseFloat(m[1], 64)
	after, _ = strconv.ParseFloat(m[2], 64)
	return before, after, m[3]
}

// The embedded default trains with no model or data flags, improves the
// held-out loss, and the same run in another home gives the same weights.
func TestTrainDefaultIsReproducible(t *testing.T) {
	args := []string{"--steps", "3", "--samples", "16"}
	b1, a1, h1 := train(t, append(args, "--home", t.TempDir())...)
	_, a2, h2 := train(t, append(args, "--home", t.TempDir())...)
	if h1 != h2 || a1 != a2 {
		t.Fatalf("same run, different results: %s %v vs %s %v", h1, a1, h2, a2)
	}
	if !(a1 < b1) {
		t.Fatalf("eval loss did not improve: %v → %v", b1, a1)
	}
}

func evalLoss(t *testing.T, model, data string) float64 {
	t.Helper()
	code, out, errs := zopeer(t, "eval", "--model", model, "--data", data, "--batch-size", "16", "--json")
	if code != 0 {
		t.Fatalf("zopeer eval: exit %d\n%s", code, errs)
	}
	var r struct {
		Loss   float64
		Tokens int
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Tokens == 0 {
		t.Fatalf("eval output %q: %v", out, err)
	}
	return r.Loss
}

// An exported model evaluates to the loss training reported, and an
// export → load → export round trip leaves the loss unchanged.
func TestExportEvalRoundTrip(t *testing.T) {
	home, e1, e2 := t.TempDir(), filepath.Join(t.TempDir(), "e1"), filepath.Join(t.TempDir(), "e2")
	_, after, _ := train(t, "--home", home, "--steps", "2", "--samples", "16", "--export", e1)
	data := filepath.Join(home, "default-model", "eval.jsonl")
	l1 := evalLoss(t, e1, data)
	if strconv.FormatFloat(l1, 'f', 4, 64) != strconv.FormatFloat(after, 'f', 4, 64) {
		t.Fatalf("exported model: eval %v, training reported %v", l1, after)
	}
	train(t, "--home", t.TempDir(), "--model", e1, "--data", filepath.Join(home, "default-model", "train.jsonl"),
		"--eval-data", data, "--steps", "1", "--samples", "2", "--lr", "0", "--export", e2)
	if l2 := evalLoss(t, e2, data); l2 != l1 {
		t.Fatalf("export round trip changed the loss: %v → %v", l1, l2)
	}
}

// Bad input gets a clear error and a non-zero exit, never a panic.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("not json\n{\"text\": 5}\n\n"), 0o644)
	cfg := filepath.Join(dir, "bad.toml")
	os.WriteFile(cfg, []byte("lrr = 1\n"), 0o644)
	model := filepath.Join(dir, "m")
	// A model directory without weights.
	os.MkdirAll(model, 0o755)
	os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"model_type":"gpt2","vocab_size":10,"n_embd":4,"n_layer":1,"n_head":1,"n_positions":8}`), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"train", "--lr", "fast"}, 2, "invalid value"},
		{[]string{"train", "--config", cfg}, 2, "unknown keys: lrr"},
		{[]string{"train", "--model", model}, 2, "both a model and data"},
		{[]string{"train", "--home", dir, "--samples", "0"}, 1, "samples"},
		{[]string{"train", "--home", filepath.Join(dir, "h2"), "--dist", "cauchy"}, 1, "unknown perturbation distribution"},
		{[]string{"eval", "--model", model}, 2, "usage"},
		{[]string{"eval", "--model", model, "--data", bad}, 1, "model"},
		{[]string{"eval", "--model", filepath.Join(dir, "nope"), "--data", bad}, 1, "nope"},
		{[]string{"generate", "--model", model, "--tokens", "-1"}, 2, "must be"},
		{[]string{"status", "--api", "127.0.0.1:1"}, 1, "no zopeer node answers"},
		{[]string{"start", "--home", filepath.Join(dir, "h3"), "--test-drop-gossip", "1.5"}, 2, "test-drop-gossip"},
		{[]string{"init", "--home", filepath.Join(dir, "h4"), "--pool", "70000"}, 2, "want 0..65536"},
		{[]string{"init", "--home", filepath.Join(dir, "h4"), "--pool", "64", "--pool-choices", "1"}, 2, "want 0 or 2..256"},
		{[]string{"init", "--home", filepath.Join(dir, "h4"), "--pool-choices", "4"}, 1, "pool choices"},
		{[]string{"start", "--home", filepath.Join(dir, "h5"), "--snapshot-quorum", "-1"}, 1, "snapshot-quorum"},
		{[]string{"start", "--home", filepath.Join(dir, "h6"), "--mesh-degree", "1"}, 1, "mesh-degree"},
		{[]string{"bench", "--model", "gpt2-small", "--tokens", "1"}, 1, "tokens"},
	} {
		code, _, errs := zopeer(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("zopeer %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errs, c.code, c.want)
		}
	}
	// init creates a home that does not exist yet, and refuses to overwrite a run.
	home := filepath.Join(dir, "new", "home")
	if code, _, errs := zopeer(t, "init", "--home", home); code != 0 {
		t.Fatalf("init in a new directory: exit %d: %s", code, errs)
	}
	if code, _, errs := zopeer(t, "init", "--home", home); code != 1 || !strings.Contains(errs, "already belongs to a run") {
		t.Errorf("second init: exit %d, %q", code, errs)
	}
	// --pool-choices has its environment twin, and reaches the manifest.
	pro := filepath.Join(dir, "pro")
	t.Setenv("ZOPEER_POOL_CHOICES", "8")
	if code, _, errs := zopeer(t, "init", "--home", pro, "--pool", "64"); code != 0 {
		t.Fatalf("init of a FedKSeed-Pro run: exit %d: %s", code, errs)
	}
	if b, err := os.ReadFile(filepath.Join(pro, "manifest.json")); err != nil || !strings.Contains(string(b), `"pool":64,"pool_choices":8`) {
		t.Errorf("Pro manifest: %s (%v)", b, err)
	}
	t.Setenv("ZOPEER_POOL_CHOICES", "0")
	t.Setenv("ZOPEER_STEPS", "many")
	if code, _, errs := zopeer(t, "train"); code != 2 || !strings.Contains(errs, "ZOPEER_STEPS") {
		t.Errorf("bad environment value: exit %d, %q", code, errs)
	}
}
