package node

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/model/defaults"
	"github.com/zopeer/zopeer/store"
)

// extraFiles are tokenizer and generation files a base model directory may
// hold besides tokenizer.json: an export must carry every one.
var extraFiles = map[string]string{
	"tokenizer_config.json":   `{"chat_template": "{{ messages }}"}`,
	"special_tokens_map.json": `{"eos_token": "<|endoftext|>"}`,
	"generation_config.json":  `{"max_new_tokens": 32}`,
}

// modelWithExtras writes the embedded model with extraFiles to dir.
func modelWithExtras(t *testing.T, dir string) {
	t.Helper()
	if err := defaults.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	for n, c := range extraFiles {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// storeState opens a home's log (as export does, whatever its manifest) and
// returns its set digest and count.
func storeState(t *testing.T, home string) (string, uint64) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(home, "store"), store.Manifest{}, store.WithStoredManifest())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return st.Digest().String(), st.Stats().Updates
}

// checkExport compares two exports byte for byte and checks the files and
// their modes.
func checkExport(t *testing.T, want, got string) {
	t.Helper()
	for _, n := range []string{"model.safetensors", "config.json", "tokenizer.json",
		"tokenizer_config.json", "special_tokens_map.json", "generation_config.json"} {
		a, err := os.ReadFile(filepath.Join(want, n))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(got, n))
		if err != nil {
			t.Fatalf("export lacks %s: %v", n, err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the reference", n)
		}
		fi, _ := os.Stat(filepath.Join(got, n))
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", n, fi.Mode().Perm())
		}
	}
	for _, n := range []string{defaults.TrainFile, defaults.EvalFile} {
		if _, err := os.Stat(filepath.Join(got, n)); err == nil {
			t.Errorf("export carries the data file %s", n)
		}
	}
}

// zopeer export of a train home writes the weights train --export wrote,
// byte for byte, with every tokenizer file, and leaves the log as it was.
func TestExportHomeMatchesTrainExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mdir := filepath.Join(dir, "model")
	modelWithExtras(t, mdir)
	s := Defaults
	s.Home, s.Model, s.Data, s.EvalData = filepath.Join(dir, "home"), mdir, filepath.Join(mdir, defaults.TrainFile), filepath.Join(mdir, defaults.EvalFile)
	s.Steps, s.Samples, s.BatchSize, s.EvalEvery, s.CkptEvery = 3, 4, 2, 0, 0
	s.Export = filepath.Join(dir, "train-export")
	log := slog.New(slog.DiscardHandler)
	r, err := OpenRun(ctx, s, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Train(ctx); err != nil {
		t.Fatal(err)
	}
	r.Close()
	digest, n := storeState(t, s.Home)
	if n != 12 {
		t.Fatalf("log holds %d updates, want 12", n)
	}

	var reports []Progress
	pctx := WithProgress(ctx, func(p Progress) { reports = append(reports, p) })
	res, err := Export(pctx, s.Home, filepath.Join(dir, "export"), "", log)
	if err != nil {
		t.Fatal(err)
	}
	checkExport(t, s.Export, res.Dir)
	if d, n2 := storeState(t, s.Home); d != digest || n2 != n {
		t.Fatalf("export changed the log: digest %s → %s, updates %d → %d", digest, d, n, n2)
	}
	if res.SetDigest != digest || res.Updates != n || res.Via != "home" {
		t.Fatalf("result %+v; want digest %s, %d updates, via home", res, digest, n)
	}
	if len(reports) == 0 || !reports[len(reports)-1].Finished || reports[len(reports)-1].Done != n {
		t.Fatalf("replay progress reports %+v", reports)
	}
}

// A home whose daemon is running is exported through its API, with the
// weights the home's log implies; the home is not touched.
func TestExportWhileDaemonRuns(t *testing.T) {
	n := newTestNet(t)
	for name, c := range extraFiles {
		os.WriteFile(filepath.Join(n.s.Model, name), []byte(c), 0o644)
	}
	h := n.home("a")
	n.fillLog(h, 256)
	p := n.start("a", h, -1, nil, nil)
	p.wait(t, time.Minute, "serving", func(st Status) bool { return st.State == StateServing })
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	live, err := Export(ctx, h, filepath.Join(n.dir, "live"), "", log)
	if err != nil {
		t.Fatal(err)
	}
	if live.Via == "home" || live.Updates != 256 {
		t.Fatalf("export while running: %+v; want it through the API, 256 updates", live)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	off, err := Export(ctx, h, filepath.Join(n.dir, "offline"), "", log)
	if err != nil {
		t.Fatal(err)
	}
	if off.SetDigest != live.SetDigest || off.WeightsHash != live.WeightsHash {
		t.Fatalf("offline %+v, live %+v", off, live)
	}
	checkExport(t, off.Dir, live.Dir)
}

// The manifest records the base model's source; a joiner without the model
// is told which one to fetch; manifests and stores without it keep working.
func TestManifestModelSource(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mdir := filepath.Join(dir, "model")
	modelWithExtras(t, mdir)
	s := Defaults
	s.Model, s.Data, s.GradBound = mdir, filepath.Join(mdir, defaults.TrainFile), 1
	s.ModelName, s.ModelRevision = "HuggingFaceTB/SmolLM-135M", "main"
	m, err := NewManifest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if m.Model == nil || m.Model.Name != s.ModelName || m.Model.Revision != "main" || m.Model.Path != mdir || len(m.Model.SHA256) != 64 {
		t.Fatalf("manifest model source %+v", m.Model)
	}
	path := filepath.Join(dir, ManifestFile)
	if err := WriteManifest(path, m); err != nil {
		t.Fatal(err)
	}
	back, err := ReadManifest(path)
	if err != nil || *back.Model != *m.Model {
		t.Fatalf("read back %+v, %v", back.Model, err)
	}

	// A joiner given no model, where the recorded directory is absent.
	gone := m
	src := *m.Model
	src.Path = filepath.Join(dir, "elsewhere")
	gone.Model = &src
	j := Defaults
	j.Home = filepath.Join(dir, "joiner")
	j, err = j.WithEmbeddedDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.withRunModel(gone, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "HuggingFaceTB/SmolLM-135M@main") {
		t.Fatalf("joiner error %v; want it to name the model", err)
	}
	// Where the recorded directory exists, start uses it.
	if got, err := j.withRunModel(m, slog.New(slog.DiscardHandler)); err != nil || got.Model != mdir {
		t.Fatalf("start with the recorded model: %q, %v", got.Model, err)
	}
	// A joiner with the wrong model is told which one it needs.
	other := m
	other.BaseDigest[0] ^= 1
	s.Home = filepath.Join(dir, "h")
	if _, err := OpenRun(ctx, s, &other, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "HuggingFaceTB/SmolLM-135M@main") {
		t.Fatalf("wrong model: %v; want the error to name the run's model", err)
	}

	// Old and new manifests open each other's stores.
	old := m
	old.Model = nil
	sdir := filepath.Join(dir, "store")
	st, err := store.Open(ctx, sdir, old)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st, err = store.Open(ctx, sdir, m); err != nil {
		t.Fatalf("a store made before model sources existed: %v", err)
	}
	st.Close()
}
