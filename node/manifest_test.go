package node

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/zopeer/zopeer/store"
)

// TestManifestFileCanonical: a home written before the canonical form (an
// indented file, base_digest as an array of numbers, format_version 0) is
// read as the same manifest, reported non-canonical so that Start rewrites it,
// and WriteManifest writes exactly the bytes the daemon serves.
func TestManifestFileCanonical(t *testing.T) {
	m := store.Manifest{Run: "old", Dist: "rademacher", Eps: 1e-3, LR: 1e-4, Quant: quantScheme,
		Params: map[string]string{"trainable": ""}, GradBound: 0.25, MaxSamples: 1 << 22, PowBits: 20}
	m.BaseDigest[3] = 7
	old := map[string]any{"format_version": 0, "run": m.Run, "base_digest": [32]byte(m.BaseDigest), "dist": m.Dist,
		"eps": m.Eps, "lr": m.LR, "quant": m.Quant, "params": m.Params, "grad_bound": m.GradBound,
		"max_samples": m.MaxSamples, "pow_bits": m.PowBits}
	b, err := json.MarshalIndent(old, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), ManifestFile)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	got, canonical, err := readManifest(path)
	if err != nil || canonical {
		t.Fatalf("old home: canonical %v, %v", canonical, err)
	}
	want, _ := m.Canonical()
	if c, _ := got.Canonical(); !bytes.Equal(c, want) {
		t.Fatalf("old home reads as\n%s\nwant\n%s", c, want)
	}
	if err := WriteManifest(path, got); err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(path)
	if !bytes.Equal(file, want) {
		t.Fatalf("file holds\n%s\nwant\n%s", file, want)
	}
	if _, canonical, err := readManifest(path); err != nil || !canonical {
		t.Fatalf("rewritten: canonical %v, %v", canonical, err)
	}
	// A manifest from a newer build is refused, clearly.
	if err := os.WriteFile(path, []byte(`{"format_version":2,"run":"old"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(path); err == nil {
		t.Fatal("format_version 2 accepted")
	}
}
