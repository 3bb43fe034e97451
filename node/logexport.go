package node

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// LogFormat names the export format of ExportLog (docs/STORE.md, "Exporting the log").
const LogFormat = "zopeer-log/1"

// ExportSummary is what ExportLog wrote.
type ExportSummary struct {
	Updates   uint64
	Excluded  int
	SetDigest zo.SetDigest
}

// ExportLog writes the update log of home as JSON lines (LogFormat): a
// header with the canonical manifest, one line per logged update in
// (machine, sample) order, one per excluded machine with its evidence, and a
// trailer with the counts and the set digest (PROTOCOL.md §7) of what it
// wrote, so a reader can tell a complete export and check it.
//
// It takes the home's lock, so it refuses a home whose daemon is running
// (Badger allows one process per store): stop the peer first.
func ExportLog(ctx context.Context, home string, w io.Writer) (ExportSummary, error) {
	var sum ExportSummary
	if _, err := os.Stat(filepath.Join(home, ManifestFile)); err != nil {
		return sum, fmt.Errorf("node: %s is not a peer's home: %w", home, err) // and create nothing there
	}
	lock, err := lockHome(home)
	if err != nil {
		return sum, fmt.Errorf("%w (stop the peer to export its log)", err)
	}
	defer lock.Close()
	m, err := ReadManifest(filepath.Join(home, ManifestFile))
	if err != nil {
		return sum, err
	}
	dir := filepath.Join(home, "store")
	if _, err := os.Stat(dir); err != nil {
		return sum, fmt.Errorf("node: %s has no log: %w", home, err)
	}
	st, err := store.Open(ctx, dir, m)
	if err != nil {
		return sum, err
	}
	defer st.Close()
	canon, err := m.Canonical()
	if err != nil {
		return sum, err
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	line := func(v any) error { return enc.Encode(v) }
	if err := line(map[string]any{"format": LogFormat, "manifest": string(canon)}); err != nil {
		return sum, err
	}
	var d zo.SetDigest
	for u, err := range st.Updates(ctx, store.Key{}) {
		if err != nil {
			return sum, err
		}
		eu := exportedUpdate{Machine: fmt.Sprintf("%016x", u.Machine), Sample: u.Sample, Exp: u.Exp, Code: u.Code}
		if u.Slotted {
			eu.Slot = &u.Slot
		}
		if err := line(eu); err != nil {
			return sum, err
		}
		d.Add(u)
		sum.Updates++
	}
	for _, e := range st.Exclusions() {
		if err := line(map[string]string{"excluded": fmt.Sprintf("%016x", e.Machine), "evidence": hex.EncodeToString(e.Evidence)}); err != nil {
			return sum, err
		}
		d.AddHash(zo.ExclusionHash(e.Machine))
		sum.Excluded++
	}
	if d != st.Digest() {
		return sum, errors.New("node: export: the updates read do not add up to the log's set digest (was it written to meanwhile?)")
	}
	sum.SetDigest = d
	if err := line(map[string]any{"end": true, "updates": sum.Updates, "excluded": sum.Excluded, "set_digest": d.String()}); err != nil {
		return sum, err
	}
	return sum, bw.Flush()
}

type exportedUpdate struct {
	Machine string `json:"machine"`
	Sample  uint64 `json:"sample"`
	Exp     uint8  `json:"exp"`
	Code    int8   `json:"code"`
	Slot    *uint8 `json:"slot,omitempty"` // FedKSeed-Pro runs (PROTOCOL.md §12.1)
}

// CheckBase reports whether the checkpoint in dir holds the base weights of
// the run whose manifest is m: the weights hash (PROTOCOL.md §7) of its
// layout (§5, the manifest's trainable pattern) must equal base_digest.
func CheckBase(dir string, m store.Manifest) error {
	lm, _, err := OpenModel(dir)
	if err != nil {
		return err
	}
	specs, err := TrainableSpecs(lm, m.Params["trainable"])
	if err != nil {
		return err
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		return err
	}
	if h := w.Hash(); h != m.BaseDigest {
		return fmt.Errorf("node: %s has weights hash %x, run %q has base_digest %x: not the run's base weights", dir, h, m.Run, m.BaseDigest)
	}
	return nil
}
