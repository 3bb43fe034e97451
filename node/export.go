package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/model/defaults"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// ExportResult says what an export wrote: the weights of exactly the
// updates of the set Digest.
type ExportResult struct {
	Dir         string `json:"dir"`
	Updates     uint64 `json:"updates"`
	SetDigest   string `json:"set_digest"`
	WeightsHash string `json:"weights_hash"`
	Via         string `json:"via"` // "home" (read it directly) or the API address of the daemon that wrote it
}

// exportFiles are the files of a base model's directory an export carries
// over besides the weights and config.json: tokenizers, their settings and
// chat template, generation defaults. Patterns as in filepath.Match.
var exportFiles = []string{"tokenizer*", "special_tokens_map.json", "generation_config.json", "added_tokens.json",
	"vocab.*", "merges.txt", "chat_template*", "preprocessor_config.json"}

// writeExport writes lm (its current parameters) to out in Hugging Face
// layout, in the base checkpoint's dtype, with the tokenizer and generation
// files of the base model directory base. Every file is 0644.
func writeExport(lm *model.Model, base, out string) error {
	if err := lm.Save(out, lm.DType()); err != nil {
		return err
	}
	copied := 0
	for _, pat := range exportFiles {
		names, _ := filepath.Glob(filepath.Join(base, pat))
		for _, src := range names {
			if fi, err := os.Stat(src); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			b, err := os.ReadFile(src)
			if err != nil {
				return fmt.Errorf("node: export: %w", err)
			}
			if err := os.WriteFile(filepath.Join(out, filepath.Base(src)), b, 0o644); err != nil {
				return fmt.Errorf("node: export: %w", err)
			}
			copied++
		}
	}
	if _, err := os.Stat(filepath.Join(out, "tokenizer.json")); err != nil {
		return fmt.Errorf("node: export: %s has no tokenizer.json", base)
	}
	return nil
}

// Export writes the current model of home, in Hugging Face layout, to out,
// without changing the home: from its log when no process holds the home,
// else through the running daemon's API (which writes it between steps).
// modelDir is the base model when the home does not say where it is (see
// store.ModelSource); "" uses what the home records.
func Export(ctx context.Context, home, out, modelDir string, log *slog.Logger) (ExportResult, error) {
	if out == "" {
		return ExportResult{}, errors.New("node: export: no output directory")
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return ExportResult{}, fmt.Errorf("node: export: %w", err)
	}
	if _, err := os.Stat(filepath.Join(home, "store")); err != nil {
		return ExportResult{}, fmt.Errorf("node: export: %s holds no update log (run `zopeer train` or `zopeer start` there first)", home)
	}
	lock, err := lockHome(home)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		// A daemon holds the home (and Badger's directory lock): ask it.
		b, rerr := os.ReadFile(filepath.Join(home, APIAddrFile))
		if rerr != nil {
			return ExportResult{}, fmt.Errorf("%w; and it has no %s to ask: is it `zopeer train`? export when it ends", err, APIAddrFile)
		}
		return ExportVia(ctx, strings.TrimSpace(string(b)), out)
	}
	if err != nil {
		return ExportResult{}, err
	}
	defer lock.Close()
	st, err := store.Open(ctx, filepath.Join(home, "store"), store.Manifest{}, store.WithStoredManifest(),
		store.WithLogger(log.With("component", "store")), store.WithGCEvery(0))
	if err != nil {
		return ExportResult{}, err
	}
	defer st.Close()
	m := st.Manifest()
	dir, err := baseModelDir(home, modelDir, m)
	if err != nil {
		return ExportResult{}, err
	}
	lm, _, err := OpenModel(dir)
	if err != nil {
		return ExportResult{}, err
	}
	specs, err := TrainableSpecs(lm, m.Params["trainable"])
	if err != nil {
		return ExportResult{}, err
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		return ExportResult{}, err
	}
	if w.Hash() != m.BaseDigest {
		return ExportResult{}, fmt.Errorf("node: export: %s is not the base model of run %q (it was made from %s, base digest %x): give --model",
			dir, m.Run, m.Model, m.BaseDigest[:8])
	}
	cfg, err := m.Config()
	if err != nil {
		return ExportResult{}, err
	}
	eng, err := zo.NewEngine(cfg, w)
	if err != nil {
		return ExportResult{}, err
	}
	rep := progressFrom(ctx)
	res, err := st.Replay(ctx, eng, store.ReplayOptions{Progress: func(p store.ReplayProgress) {
		rep(Progress{Task: "replay", Done: p.Applied, Total: p.Total, Unit: "updates"})
	}})
	if err != nil {
		return ExportResult{}, fmt.Errorf("node: export: replay: %w", err)
	}
	rep(Progress{Task: "replay", Done: res.Included.Count(), Total: res.Included.Count(), Unit: "updates", Finished: true})
	if tensors, elems := eng.Weights().Overflow(); elems > 0 {
		return ExportResult{}, fmt.Errorf("node: export: %w: %d elements of %d tensors", ErrOverflow, elems, tensors)
	}
	eng.SyncViews()
	if err := writeExport(lm, dir, out); err != nil {
		return ExportResult{}, err
	}
	r := ExportResult{Dir: out, Updates: res.Included.Count(), SetDigest: st.Digest().String(),
		WeightsHash: fmt.Sprintf("%x", eng.Weights().Hash()), Via: "home"}
	log.Info("exported", "dir", out, "updates", r.Updates, "dtype", lm.DType())
	return r, nil
}

// baseModelDir finds the base model of a home's run: dir when given, else
// the directory the manifest records, else the embedded default (written
// to home/default-model as train and start do).
func baseModelDir(home, dir string, m store.Manifest) (string, error) {
	if dir != "" {
		return dir, nil
	}
	src := m.Model
	if src != nil && !src.Embedded && src.Path != "" {
		if _, err := os.Stat(filepath.Join(src.Path, "config.json")); err == nil {
			return src.Path, nil
		}
	}
	if src == nil || src.Embedded {
		d := filepath.Join(home, "default-model")
		if err := defaults.WriteTo(d); err != nil {
			return "", err
		}
		return d, nil
	}
	return "", fmt.Errorf("node: run %q was made from %s (recorded path %q, base digest %x), which is not here: give --model DIR",
		m.Run, src, src.Path, m.BaseDigest[:8])
}

// exportReq asks the daemon's loop to export its current weights.
type exportReq struct {
	out  string
	done chan exportAnswer
}

type exportAnswer struct {
	res ExportResult
	err error
}

// exportNow writes the daemon's current weights; only from the loop.
func (d *Daemon) exportNow(out string) (ExportResult, error) {
	if err := d.run.Trainer.Overflow(); err != nil {
		return ExportResult{}, fmt.Errorf("node: export: %w", err)
	}
	d.run.Engine.SyncViews()
	if err := writeExport(d.run.Model, d.run.Settings.Model, out); err != nil {
		return ExportResult{}, err
	}
	r := ExportResult{Dir: out, Updates: d.run.Log.Stats().Updates, SetDigest: d.run.Log.Digest().String(),
		WeightsHash: fmt.Sprintf("%x", d.run.Engine.Weights().Hash()), Via: d.Status().API}
	d.log.Info("exported", "dir", out, "updates", r.Updates)
	return r, nil
}

// serveExport answers one pending export request, if any; only from the loop.
func (d *Daemon) serveExport() {
	select {
	case req := <-d.exportC:
		r, err := d.exportNow(req.out)
		req.done <- exportAnswer{r, err}
	default:
	}
}

// handleExport is POST /api/export {"out": ABSOLUTE DIR}: the loop writes the
// export between two steps and the answer is an ExportResult.
func (d *Daemon) handleExport(w http.ResponseWriter, r *http.Request) {
	if code, why := localRequest(r); code != 0 {
		http.Error(w, why, code)
		return
	}
	var q struct {
		Out string `json:"out"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&q); err != nil || !filepath.IsAbs(q.Out) {
		http.Error(w, `want {"out": "/absolute/dir"}`, http.StatusBadRequest)
		return
	}
	req := exportReq{out: filepath.Clean(q.Out), done: make(chan exportAnswer, 1)}
	select {
	case d.exportC <- req:
	case <-r.Context().Done():
		return
	case <-time.After(time.Minute):
		http.Error(w, "the peer's loop did not take the request within a minute (is it replaying?)", http.StatusServiceUnavailable)
		return
	}
	a := <-req.done
	if a.err != nil {
		http.Error(w, a.err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a.res)
}

// localRequest refuses a request that a web page could have made: the API
// listens on loopback, but any page a local browser shows can send it a
// "simple" cross-origin POST (no preflight, Content-Type text/plain) or
// reach it under its own DNS name (rebinding). A JSON Content-Type forces a
// preflight the API never grants; the Host must name a loopback address; an
// Origin, if any, must be the API's own.
func localRequest(r *http.Request) (int, string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, "want Content-Type: application/json"
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return http.StatusForbidden, "the API answers requests addressed to a loopback address only"
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
		return http.StatusForbidden, "cross-origin requests are refused"
	}
	return 0, ""
}

// ExportVia asks the daemon whose API is at api to export to out (absolute).
func ExportVia(ctx context.Context, api, out string) (ExportResult, error) {
	body, _ := json.Marshal(map[string]string{"out": out})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+api+"/api/export", bytes.NewReader(body))
	if err != nil {
		return ExportResult{}, fmt.Errorf("node: export: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ExportResult{}, fmt.Errorf("node: export: the home is in use and its daemon does not answer at %s: %w", api, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return ExportResult{}, fmt.Errorf("node: export through %s: %s: %s", api, resp.Status, strings.TrimSpace(string(b)))
	}
	var r ExportResult
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("node: export through %s: %w", api, err)
	}
	return r, nil
}
