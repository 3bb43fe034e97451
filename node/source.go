package node

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/zopeer/zopeer/store"
)

// modelSource is what a new manifest records of s's base model: the
// embedded default, or the directory, name and revision as given, with the
// SHA-256 of its safetensors files.
func (s Settings) modelSource(withSHA bool) *store.ModelSource {
	if s.embedded || s.Model == "" {
		return &store.ModelSource{Embedded: true, Name: "zopeer-default"}
	}
	src := &store.ModelSource{Name: s.ModelName, Revision: s.ModelRevision, Path: s.Model}
	if abs, err := filepath.Abs(s.Model); err == nil {
		src.Path = abs
	}
	if withSHA {
		src.SHA256, _ = safetensorsSHA256(s.Model)
	}
	return src
}

// safetensorsSHA256 hashes the *.safetensors files of dir, in name order.
func safetensorsSHA256(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil || len(names) == 0 {
		return "", fmt.Errorf("node: no safetensors in %s", dir)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			return "", fmt.Errorf("node: %w", err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("node: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// withRunModel makes a peer that was given no model use the run's: the
// directory the manifest records when it is here, or else an error that
// says which model the run needs. A model given on the command line is
// kept (OpenRun checks its digest).
func (s Settings) withRunModel(m store.Manifest, log *slog.Logger) (Settings, error) {
	src := m.Model
	if !s.embedded || src == nil || src.Embedded {
		return s, nil
	}
	if src.Path != "" {
		if _, err := os.Stat(filepath.Join(src.Path, "config.json")); err == nil {
			log.Info("using the run's base model", "model", src.String(), "dir", src.Path)
			s.Model, s.embedded = src.Path, false
			return s, nil
		}
	}
	return s, fmt.Errorf("node: run %q was created from %s%s (base digest %x); "+
		"fetch it and give --model DIR (and --data FILE for your training data)",
		m.Run, src, sourceDetail(src), m.BaseDigest[:8])
}

func sourceDetail(src *store.ModelSource) string {
	d := ""
	if src == nil {
		return d
	}
	if src.Path != "" && src.String() != src.Path {
		d += fmt.Sprintf(", path %s on its creator's machine", src.Path)
	}
	if src.SHA256 != "" {
		d += ", safetensors sha256 " + src.SHA256[:16] + "…"
	}
	return d
}
