package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/zo"
)

// The crash test re-executes the test binary as a child that appends as fast
// as it can and is killed with SIGKILL at random moments.
const (
	envCrashDir = "ZOPEER_STORE_CRASH_DIR"
	envCrashRun = "ZOPEER_STORE_CRASH_RUN"
	envHoldDir  = "ZOPEER_STORE_HOLD_DIR"
)

// crashChild appends batches of updates and prints "u machine sample exp code"
// for each once Append has returned; every few batches it also applies them
// and writes a checkpoint, so kills land in checkpoint writes too.
func crashChild(t *testing.T, dir string, run uint64) {
	fail := func(err error) {
		fmt.Printf("ERR %v\n", err)
		os.Exit(3)
	}
	ctx := context.Background()
	s, err := Open(ctx, dir, testManifest(), WithLogger(testLogger(t)))
	if err != nil {
		fail(err)
	}
	e := newEngine(t, 1)
	res, err := s.Replay(ctx, e, ReplayOptions{})
	if err != nil {
		fail(err)
	}
	applied := res.Included
	queued := applied.Clone() // applied, or waiting in pending
	next := map[uint64]uint64{}
	for m, rs := range s.Summary() {
		next[m] = rs[len(rs)-1].Last + 1
	}
	r := rand.New(rand.NewPCG(run, 99))
	var pending []zo.Update
	for i := 0; ; i++ {
		if i%20 == 0 {
			e.Apply(pending)
			for _, u := range pending {
				applied.Add(u.Machine, u.Sample)
			}
			pending = pending[:0]
			if _, err := s.WriteCheckpoint(ctx, e.Weights(), applied); err != nil {
				fail(err)
			}
			if i == 0 {
				// A checkpoint exists before any kill, so every restart can use one.
				os.Stdout.WriteString("ready\n")
			}
		}
		batch := make([]zo.Update, 1+r.IntN(8))
		for j := range batch {
			m := uint64(r.IntN(4))
			if r.IntN(10) == 0 && next[m] > 0 {
				batch[j] = upd(m, r.Uint64N(next[m])) // maybe a duplicate
				continue
			}
			next[m] += uint64(r.IntN(2)) // leave some holes
			batch[j] = upd(m, next[m])
			next[m]++
		}
		res, err := s.Append(ctx, batch...)
		if err != nil {
			fail(err)
		}
		if len(res.Equivocations) > 0 {
			fail(fmt.Errorf("equivocations %v", res.Equivocations))
		}
		var b strings.Builder
		for _, u := range batch {
			fmt.Fprintf(&b, "u %d %d %d %d\n", u.Machine, u.Sample, u.Exp, u.Code)
			if queued.Add(u.Machine, u.Sample) {
				pending = append(pending, u)
			}
		}
		// One write of less than PIPE_BUF bytes: the parent reads whole lines.
		os.Stdout.WriteString(b.String())
	}
}

func TestCrashKill(t *testing.T) {
	if dir := os.Getenv(envCrashDir); dir != "" {
		run, _ := strconv.ParseUint(os.Getenv(envCrashRun), 10, 64)
		crashChild(t, dir, run)
		return
	}
	kills := 60
	if testing.Short() {
		kills = 20
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(42, 42))
	durable := map[Key]zo.Update{}
	var total, fromCkpt int
	for run := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill$")
		cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashRun+"="+strconv.Itoa(run))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(out)
		if run > 0 && r.IntN(4) == 0 {
			// Sometimes while the child is still opening, replaying or
			// writing its first checkpoint.
			time.Sleep(time.Duration(r.IntN(40_000)) * time.Microsecond)
		} else {
			if line, err := br.ReadString('\n'); line != "ready\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("run %d: child said %q (%v); stderr:\n%s", run, line, err, stderr.String())
			}
			// A random moment: right away, or after some appends and checkpoints.
			time.Sleep(time.Duration(r.IntN(30_000)) * time.Microsecond)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		n, err := readDurable(br, durable)
		cmd.Wait()
		if err != nil {
			t.Fatalf("run %d: %v; stderr:\n%s", run, err, stderr.String())
		}
		total += n
		if verifyAfterCrash(t, dir, durable) != 0 {
			fromCkpt++
		}
	}
	t.Logf("%d kills, %d updates reported durable, %d distinct; replay started from a checkpoint %d times", kills, total, len(durable), fromCkpt)
	if fromCkpt != kills {
		t.Fatalf("replay used a checkpoint after %d of %d restarts; every child wrote one before it could be killed", fromCkpt, kills)
	}
}

// readDurable records every complete line the child printed; a line cut short
// by the kill was not reported.
func readDurable(br *bufio.Reader, durable map[Key]zo.Update) (int, error) {
	n := 0
	for {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if strings.HasPrefix(line, "ERR") {
			return n, errors.New(line)
		}
		if line == "ready\n" {
			continue
		}
		var u zo.Update
		if _, err := fmt.Sscanf(line, "u %d %d %d %d\n", &u.Machine, &u.Sample, &u.Exp, &u.Code); err != nil {
			return n, fmt.Errorf("line %q: %w", line, err)
		}
		durable[Key{u.Machine, u.Sample}] = u
		n++
	}
}

// verifyAfterCrash reopens the store and checks that every update reported
// durable is there, and that replay (from a checkpoint and from the base)
// matches an independent application of the logged set. It returns the
// checkpoint replay started from.
func verifyAfterCrash(t *testing.T, dir string, durable map[Key]zo.Update) uint64 {
	t.Helper()
	s := reopen(t, dir)
	defer s.Close()
	for k, want := range durable {
		got, ok, err := s.Get(k.Machine, k.Sample)
		if err != nil || !ok || got != want {
			t.Fatalf("update %v reported durable, store has %v %v %v", want, got, ok, err)
		}
	}
	all := collect(t, s, Key{})
	if uint64(len(all)) != s.Stats().Updates || uint64(len(all)) != s.Summary().Count() {
		t.Fatalf("log holds %d updates, stats say %d, summary %d", len(all), s.Stats().Updates, s.Summary().Count())
	}
	if n := len(collectSince(t, s, 0)); n != len(all) {
		t.Fatalf("%d updates in arrival order, %d in canonical order", n, len(all))
	}
	var dig zo.SetDigest
	for _, u := range all {
		dig.Add(u)
	}
	if s.Digest() != dig {
		t.Fatalf("store digest %v, log's %v", s.Digest(), dig)
	}
	want, _ := independentHash(t, 1, all)
	ctx := context.Background()
	res, err := s.Replay(ctx, newEngine(t, 1), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := s.Replay(ctx, newEngine(t, 1), ReplayOptions{FromBase: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != dig || !res.Included.Equal(s.Summary()) {
		t.Fatalf("replay included %d updates (digest %v) of %d (%v)", res.Included.Count(), res.Digest, len(all), dig)
	}
	if res.Hash != want || base.Hash != want {
		t.Fatalf("after a crash: replay %x (checkpoint %d), from base %x, independent %x", res.Hash[:4], res.Checkpoint, base.Hash[:4], want[:4])
	}
	if len(res.Skipped) > 0 {
		t.Fatalf("a checkpoint was skipped after a crash: %v", res.Skipped)
	}
	return res.Checkpoint
}
