package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/zopeer/zopeer/model/safetensors"
)

// Load reads a Hugging Face model directory: config.json plus
// model.safetensors, or shards listed in model.safetensors.index.json.
// F32, F16 and BF16 weights are converted to float32.
func Load(dir string) (*Model, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	files, err := openWeights(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	find := func(name string) (*safetensors.File, safetensors.Info, bool) {
		for _, f := range files {
			if t, ok := f.Info(name); ok {
				return f, t, true
			}
		}
		return nil, safetensors.Info{}, false
	}
	m := newModel(cfg)
	dtypes := map[safetensors.DType]int{}
	for i := range m.params {
		p := &m.params[i]
		name := p.Name
		f, t, ok := find(name)
		if !ok && cfg.Arch == GPT2 {
			// The original OpenAI-converted checkpoints omit the prefix.
			name = strings.TrimPrefix(name, "transformer.")
			f, t, ok = find(name)
		}
		if !ok {
			return nil, fmt.Errorf("model: %s: missing tensor %q", dir, p.Name)
		}
		if !slices.Equal(t.Shape, p.Shape) {
			return nil, fmt.Errorf("model: tensor %q has shape %v, config.json implies %v", name, t.Shape, p.Shape)
		}
		if err := f.ReadFloat32(name, p.Data); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		dtypes[t.DType] += len(p.Data)
	}
	for d, n := range dtypes {
		if n > dtypes[m.dtype] {
			m.dtype = d
		}
	}
	return m, nil
}

// openWeights opens the checkpoint's safetensors files.
func openWeights(dir string) ([]*safetensors.File, error) {
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err == nil {
		f, err := safetensors.Open(single)
		if err != nil {
			return nil, err
		}
		return []*safetensors.File{f}, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model: %s has neither model.safetensors nor model.safetensors.index.json", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("model: bad model.safetensors.index.json: %w", err)
	}
	var names []string
	for _, n := range idx.WeightMap {
		if n != filepath.Base(n) || !strings.HasSuffix(n, ".safetensors") {
			return nil, fmt.Errorf("model: index names shard %q outside the directory", n)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var files []*safetensors.File
	for _, n := range names {
		f, err := safetensors.Open(filepath.Join(dir, n))
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// Save writes the model as a Hugging Face directory that Load reads:
// config.json (torch_dtype updated) and model.safetensors in dtype d (F32,
// F16 or BF16; m.DType() is the checkpoint's own). A model reading a
// ViewSource derives every tensor from it for the file (a float32 copy of
// the weights while the file is written).
func (m *Model) Save(dir string, d safetensors.DType) error {
	switch d {
	case safetensors.F32, safetensors.F16, safetensors.BF16:
	default:
		return fmt.Errorf("model: cannot save as %q", d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	cfg := make(map[string]any, len(m.cfg.raw)+1)
	for k, v := range m.cfg.raw {
		cfg[k] = v
	}
	cfg["torch_dtype"] = map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}[d]
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	ts := make([]safetensors.Tensor, len(m.params))
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, p := range m.params {
		data := p.Data
		if m.src != nil { // streamed weights: derived here, for the file only
			data = make([]float32, m.sizes[i])
			m.src.FillView(i, 0, data)
		}
		ts[i] = safetensors.Tensor{Name: p.Name, Shape: p.Shape, Data: data}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), d, ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return nil
}
