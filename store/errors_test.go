package store

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/zopeer/zopeer/zo"
)

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
	if !strings.HasPrefix(err.Error(), "store: ") {
		t.Fatalf("error %q does not start with \"store: \"", err)
	}
	t.Log(err)
}

func TestOpenOtherRunOrManifest(t *testing.T) {
	s, dir := openTest(t, true)
	mustAppend(t, s, upd(1, 1))
	s.Close()
	ctx := context.Background()
	other := testManifest()
	other.Run = "another-run"
	_, err := Open(ctx, dir, other)
	wantErr(t, err, ErrOtherRun)
	lr := testManifest()
	lr.LR *= 2
	_, err = Open(ctx, dir, lr)
	wantErr(t, err, ErrManifest)
	s = reopen(t, dir) // the failed opens released the lock and changed nothing
	if _, ok, _ := s.Get(1, 1); !ok {
		t.Fatal("update lost")
	}
}

func TestOpenOtherFormatVersion(t *testing.T) {
	s, dir := openTest(t, true)
	s.Close()
	db, err := badger.Open(badgerOptions(filepath.Join(dir, "db"), buildOptions(nil)).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error { return txn.Set([]byte{keyVersion}, []byte{0, 0, 0, 2}) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir, testManifest())
	wantErr(t, err, ErrFormat)
}

// holdChild opens the store and keeps it open until it is killed.
func holdChild(dir string) {
	s, err := Open(context.Background(), dir, testManifest())
	if err != nil {
		os.Stdout.WriteString("ERR " + err.Error() + "\n")
		os.Exit(3)
	}
	defer s.Close()
	os.Stdout.WriteString("ready\n")
	select {}
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	if dir := os.Getenv(envHoldDir); dir != "" {
		holdChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenLockedByAnotherProcess$")
	cmd.Env = append(os.Environ(), envHoldDir+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("child said %q", line)
	}
	_, err = Open(context.Background(), dir, testManifest())
	wantErr(t, err, ErrLocked)
	cmd.Process.Kill()
	cmd.Wait()
	// The kernel dropped the dead child's lock.
	reopen(t, dir)
	// A second Open in the same process is refused as well.
	_, err = Open(context.Background(), dir, testManifest())
	wantErr(t, err, ErrLocked)
}

// TestDiskFullHook simulates a full disk through the free-space probe, so it
// runs without the privileges a tmpfs mount needs.
func TestDiskFullHook(t *testing.T) {
	s, dir := openTest(t, true)
	mustAppend(t, s, upd(1, 1))
	saved := statfs
	defer func() { statfs = saved }()
	statfs = func(string) (uint64, error) { return 1 << 20, nil }
	_, err := s.Append(context.Background(), upd(1, 2))
	wantErr(t, err, ErrDiskFull)
	_, err = s.WriteCheckpoint(context.Background(), newEngine(t, 1).Weights(), Summary{})
	wantErr(t, err, ErrDiskFull)
	s.Close()
	_, err = Open(context.Background(), dir, testManifest())
	wantErr(t, err, ErrDiskFull)
	statfs = saved
	s = reopen(t, dir)
	if _, ok, _ := s.Get(1, 2); ok {
		t.Fatal("an update refused for lack of space was logged")
	}
	if _, ok, _ := s.Get(1, 1); !ok {
		t.Fatal("update lost")
	}
}

// mountTmpfs mounts a tmpfs of the given size, or skips the test when this
// process may not mount.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func TestDiskFullTmpfs(t *testing.T) {
	ctx := context.Background()
	tiny := mountTmpfs(t, "1m")
	_, err := Open(ctx, filepath.Join(tiny, "store"), testManifest())
	wantErr(t, err, ErrDiskFull)

	dir := mountTmpfs(t, "40m")
	s := reopen(t, dir)
	mustAppend(t, s, upd(1, 1))
	filler := filepath.Join(dir, "filler")
	fill(t, filler, 24<<20)
	_, err = s.Append(ctx, upd(1, 2))
	wantErr(t, err, ErrDiskFull)
	os.Remove(filler)
	mustAppend(t, s, upd(1, 3))

	// A checkpoint that runs out of space half-way (the free-space probe is
	// told to see plenty, as a quota or a racing writer would make it).
	saved := statfs
	defer func() { statfs = saved }()
	statfs = func(string) (uint64, error) { return 1 << 40, nil }
	fill(t, filler, 39<<20)
	e := newEngine(t, 100)
	_, err = s.WriteCheckpoint(ctx, e.Weights(), Summary{})
	wantErr(t, err, ErrDiskFull)
	if cks, _ := s.Checkpoints(); len(cks) != 0 {
		t.Fatalf("a failed checkpoint was recorded: %v", cks)
	}
	if names, _ := s.cks.list(); len(names) != 0 {
		t.Fatalf("a failed checkpoint left files: %v", names)
	}
	statfs = saved
	os.Remove(filler)
	s.Close()
	s = reopen(t, dir)
	if s.Stats().Updates != 2 {
		t.Fatalf("%d updates after a full disk, want 2", s.Stats().Updates)
	}
}

// fill writes a file of up to n bytes, stopping quietly when the disk is full.
func fill(t *testing.T, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		w, err := f.Write(buf[:min(n, len(buf))])
		n -= w
		if err != nil {
			return
		}
	}
}

func TestReadOnlyDisk(t *testing.T) {
	dir := mountTmpfs(t, "40m")
	s := reopen(t, filepath.Join(dir, "store"))
	mustAppend(t, s, upd(1, 1))
	s.Close()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot remount read-only: %v %s", err, out)
	}
	ctx := context.Background()
	_, err := Open(ctx, filepath.Join(dir, "store"), testManifest())
	wantErr(t, err, ErrReadOnly)
	_, err = Open(ctx, filepath.Join(dir, "new"), testManifest())
	wantErr(t, err, ErrReadOnly)
}

// TestCheckpointFilesAfterCrash: a temp file and a file without metadata (a
// writer killed before recording it) are removed on open; metadata whose
// file vanished is skipped by Replay.
func TestCheckpointFilesAfterCrash(t *testing.T) {
	ctx := context.Background()
	s, dir := openTest(t, true)
	mustAppend(t, s, upd(1, 1), upd(1, 2))
	e := newEngine(t, 1)
	if _, err := s.WriteCheckpoint(ctx, e.Weights(), Summary{}); err != nil {
		t.Fatal(err)
	}
	e.Apply([]zo.Update{upd(1, 1)})
	info, err := s.WriteCheckpoint(ctx, e.Weights(), Summary{1: {{1, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	cdir := filepath.Join(dir, ckptDir)
	for _, n := range []string{"ckpt-00000000000000ff.zck.tmp", "ckpt-00000000000000fe.zck"} {
		if err := os.WriteFile(filepath.Join(cdir, n), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(cdir, info.File)); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	names, _ := s.cks.list()
	if len(names) != 1 {
		t.Fatalf("checkpoint files after reopening: %v", names)
	}
	res, err := s.Replay(ctx, newEngine(t, 1), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || !errors.Is(res.Skipped[0], ErrCorrupt) || res.Checkpoint != info.ID-1 || res.Applied != 2 {
		t.Fatalf("replay with a missing checkpoint file: %+v", res)
	}
	t.Log(res.Skipped[0])
	want, _ := independentHash(t, 1, []zo.Update{upd(1, 1), upd(1, 2)})
	if res.Hash != want {
		t.Fatal("hash differs from an independent application")
	}
}

// TestEmptyBadgerLogAfterCrash: a kill while Badger creates a log file leaves
// it empty; Open must still succeed and lose nothing.
func TestEmptyBadgerLogAfterCrash(t *testing.T) {
	for _, name := range []string{"00007.mem", "000009.vlog"} {
		t.Run(name, func(t *testing.T) {
			s, dir := openTest(t, true)
			mustAppend(t, s, upd(1, 1))
			s.Close()
			if err := os.WriteFile(filepath.Join(dir, "db", name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, dir)
			if _, ok, err := s.Get(1, 1); !ok || err != nil {
				t.Fatalf("update lost: %v", err)
			}
		})
	}
}
