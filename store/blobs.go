package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// dirBlobs keeps checkpoints as files: written to a temp file, fsynced,
// renamed into place, and the directory fsynced, so a name never refers to a
// partly written file, even after power loss.
type dirBlobs struct{ dir string }

type dirWriter struct {
	f          *os.File
	dir, final string
}

func (d dirBlobs) create(name string) (blobWriter, error) {
	f, err := os.OpenFile(filepath.Join(d.dir, name+".tmp"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &dirWriter{f: f, dir: d.dir, final: filepath.Join(d.dir, name)}, nil
}

func (w *dirWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *dirWriter) commit() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.final)
	}
	if err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return syncDir(w.dir)
}

func (w *dirWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (d dirBlobs) open(name string) (io.ReadCloser, int64, error) {
	f, err := os.Open(filepath.Join(d.dir, name))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func (d dirBlobs) remove(name string) error {
	err := os.Remove(filepath.Join(d.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (d dirBlobs) list() ([]string, error) {
	es, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// memBlobs keeps checkpoints in memory for OpenMemory.
type memBlobs struct {
	mu    sync.Mutex
	files map[string][]byte
}

func newMemBlobs() *memBlobs { return &memBlobs{files: map[string][]byte{}} }

type memWriter struct {
	m    *memBlobs
	name string
	buf  bytes.Buffer
}

func (m *memBlobs) create(name string) (blobWriter, error) {
	return &memWriter{m: m, name: name}, nil
}

func (w *memWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *memWriter) commit() error {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	w.m.files[w.name] = w.buf.Bytes()
	return nil
}

func (w *memWriter) abort() {}

func (m *memBlobs) open(name string) (io.ReadCloser, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", name, errNoBlob)
	}
	return memBlob{bytes.NewReader(b)}, int64(len(b)), nil
}

// memBlob is an open in-memory blob; like a file it reads at offsets too.
type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }

func (m *memBlobs) remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, name)
	return nil
}

func (m *memBlobs) list() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.files {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
