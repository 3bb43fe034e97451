package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// filledStore writes n updates to a fresh store on disk and closes it, so its
// tables are on disk; it returns the store directory.
func filledStore(t *testing.T, n int) string {
	t.Helper()
	s, dir := openTest(t, true)
	us := make([]zo.Update, 0, n)
	for i := range n {
		us = append(us, upd(uint64(1+i%3), uint64(i)))
	}
	for len(us) > 0 {
		k := min(len(us), 1000)
		mustAppend(t, s, us[:k]...)
		us = us[k:]
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func globDB(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "db", pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Fatalf("no %s in %s", pattern, dir)
	}
	return m
}

// openDamaged opens dir in a child-free way: a panic inside Badger's own
// goroutines would end the test binary, which is exactly what must not happen.
func openDamaged(t *testing.T, dir string) (*Store, error) {
	t.Helper()
	s, err := Open(context.Background(), dir, testManifest(), WithLogger(testLogger(t)))
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// A table file cut short (anywhere: half, a few bytes, one byte) is a clear
// ErrCorrupt naming the file, never a panic (Badger panics in its own
// goroutine on some of these, which no recover can catch) and never an empty log.
func TestTruncatedTableRefused(t *testing.T) {
	dir := filledStore(t, 5000)
	sst := globDB(t, dir, "*.sst")[0]
	good, err := os.ReadFile(sst)
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []int{len(good) / 2, len(good) - 1, len(good) - 3, len(good) - 100, 3, 0} {
		if err := os.WriteFile(sst, good[:keep], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := openDamaged(t, dir)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), sst) {
			t.Fatalf("table cut to %d of %d bytes: %v, want ErrCorrupt naming %s", keep, len(good), err, sst)
		}
	}
	// A flipped byte inside a block: the checksums Badger verifies on open.
	bad := append([]byte(nil), good...)
	bad[100] ^= 0xff
	if err := os.WriteFile(sst, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openDamaged(t, dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a flipped byte in a table: %v, want ErrCorrupt", err)
	}
	if err := os.WriteFile(sst, good, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := openDamaged(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().Updates; n != 5000 {
		t.Fatalf("restored table: %d updates, want 5000", n)
	}
}

// A MANIFEST deleted or cut short next to tables, a value log or checkpoints
// is refused (ErrCorrupt naming it): Badger would drop the tables it no
// longer names and open an empty log without a word. The files are left as
// they were, so restoring the MANIFEST brings everything back.
func TestDamagedManifestRefused(t *testing.T) {
	dir := filledStore(t, 5000)
	s := reopen(t, dir)
	mustAppend(t, s, upd(9, 1)) // a second table, so the MANIFEST has several records
	if _, err := s.WriteCheckpoint(context.Background(), newEngine(t, 1).Weights(), Summary{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	mpath := filepath.Join(dir, "db", "MANIFEST")
	good, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func() error{
		"deleted":           func() error { return os.Remove(mpath) },
		"truncated to half": func() error { return os.WriteFile(mpath, good[:len(good)/2], 0o644) },
		"truncated to 0":    func() error { return os.WriteFile(mpath, nil, 0o644) },
		"magic only":        func() error { return os.WriteFile(mpath, good[:8], 0o644) },
	} {
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		_, err := openDamaged(t, dir)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "MANIFEST") {
			t.Fatalf("MANIFEST %s: %v, want ErrCorrupt naming the MANIFEST", name, err)
		}
		if len(globDB(t, dir, "*.sst")) == 0 {
			t.Fatalf("MANIFEST %s: the tables were deleted", name)
		}
		if err := os.WriteFile(mpath, good, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A partial record at the end (a crash while Badger appended one) that
	// leaves every table named: opened, Badger truncates it.
	if err := os.WriteFile(mpath, append(append([]byte(nil), good...), 0, 0, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = openDamaged(t, dir)
	if err != nil {
		t.Fatalf("a MANIFEST with a partial last record: %v", err)
	}
	if n := s.Stats().Updates; n != 5001 {
		t.Fatalf("restored MANIFEST: %d updates, want 5001", n)
	}
	if cks, _ := s.Checkpoints(); len(cks) != 1 {
		t.Fatalf("restored MANIFEST: %d checkpoints, want 1", len(cks))
	}
}

// With only checkpoints left next to a fresh database (the db directory
// removed), the store refuses to open empty: it would delete them as orphans.
func TestEmptyLogNextToCheckpointsRefused(t *testing.T) {
	dir := filledStore(t, 100)
	s := reopen(t, dir)
	if _, err := s.WriteCheckpoint(context.Background(), newEngine(t, 1).Weights(), s.Summary()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.RemoveAll(filepath.Join(dir, "db")); err != nil {
		t.Fatal(err)
	}
	_, err := openDamaged(t, dir)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("empty db next to a checkpoint: %v, want ErrCorrupt", err)
	}
	if names, _ := os.ReadDir(filepath.Join(dir, ckptDir)); len(names) == 0 {
		t.Fatal("the checkpoint was deleted")
	}
}
