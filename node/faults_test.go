package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/p2p"
)

// A joiner started against a peer holding thousands of updates never
// contributes before it holds all of them: its store's arrival order shows
// every one of the donor's updates logged before the joiner's first own one.
// `go test -short` runs 2 joiners; ZOPEER_JOINERS=50 runs the 50-joiner loop:
//
//	ZOPEER_JOINERS=50 go test ./node/ -run TestJoinerNeverContributesBeforeCaughtUp -timeout 30m
func TestJoinerNeverContributesBeforeCaughtUp(t *testing.T) {
	joiners := 2
	if v := os.Getenv("ZOPEER_JOINERS"); v != "" {
		var err error
		if joiners, err = strconv.Atoi(v); err != nil {
			t.Fatalf("ZOPEER_JOINERS: %v", err)
		}
	}
	n := newTestNet(t)
	dh := n.home("donor")
	const held = 4096
	machine := n.fillLog(dh, held)
	donor := n.start("donor", dh, -1, nil, nil)
	donor.wait(t, time.Minute, "donor serving", func(st Status) bool { return st.State == StateServing && st.Updates >= held })
	for i := range joiners {
		h := n.home(fmt.Sprintf("joiner%d", i))
		j := n.start(fmt.Sprintf("joiner%d", i), h, 1, []string{donor.addr}, nil)
		st := j.wait(t, 2*time.Minute, "one step", func(st Status) bool { return st.Steps >= 1 })
		self := machineOf(t, st)
		if err := j.stop(); err != nil {
			t.Fatalf("joiner %d: %v", i, err)
		}
		before, own := arrivalsBeforeOwn(t, h, n.m, self, machine)
		if own == 0 || before != held {
			t.Fatalf("joiner %d contributed after logging %d of the donor's %d updates (own %d)", i, before, held, own)
		}
	}
	t.Logf("%d joiners each held all %d updates before contributing", joiners, held)
}

// copyDir copies a stopped peer's home.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// A home restored from an old copy rejoins without equivocating: it learns
// the samples its machine published since the copy from a peer before it
// proposes, and continues after them.
func TestRestoredHomeRejoins(t *testing.T) {
	n := newTestNet(t)
	b := n.start("b", n.home("b"), -1, nil, nil)
	ah := n.home("a")
	a := n.start("a", ah, 2, []string{b.addr}, nil)
	a.wait(t, time.Minute, "2 steps", func(st Status) bool { return st.State == StateServing && st.Steps >= 2 })
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(n.dir, "a-old")
	copyDir(t, ah, old)
	a = n.start("a", ah, 2, []string{b.addr}, nil)
	st := a.wait(t, time.Minute, "2 more steps", func(st Status) bool { return st.State == StateServing && st.Steps >= 2 })
	if st.OwnUpdates != 16 || st.NextSample != 16 {
		t.Fatalf("after 4 steps of 4: own %d, next sample %d", st.OwnUpdates, st.NextSample)
	}
	b.wait(t, time.Minute, "b holds a's 16", func(st Status) bool { return st.Updates == 16 })
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(ah); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(old, ah); err != nil {
		t.Fatal(err)
	}
	a = n.start("a-restored", ah, 2, []string{b.addr}, nil)
	st = a.wait(t, time.Minute, "2 steps from the old copy", func(st Status) bool {
		return st.State == StateFailed || st.State == StateServing && st.Steps >= 2
	})
	if st.State == StateFailed || strings.Contains(a.log.String(), "equivocate") {
		t.Fatalf("the restored home equivocated: %s", st.Error)
	}
	if st.OwnUpdates != 24 || st.NextSample != 24 {
		t.Fatalf("restored home after 2 steps: own %d, next sample %d, want 24 and 24", st.OwnUpdates, st.NextSample)
	}
	b.wait(t, time.Minute, "b holds a's 24", func(st Status) bool { return st.Updates == 24 })
	if len(b.status(t).Flagged) != 0 {
		t.Fatal("b flagged the restored machine")
	}
}

// Three signed announcements claiming 2^62 updates, from a fresh key, leave
// every honest peer training: they verify with donors, find nothing to
// fetch, discredit the liar and go on contributing.
func TestLyingAnnouncementLeavesPeersTraining(t *testing.T) {
	n := newTestNet(t)
	a := n.start("a", n.home("a"), 0, nil, nil)
	b := n.start("b", n.home("b"), 0, []string{a.addr}, nil)
	for _, p := range []*testDaemon{a, b} {
		p.wait(t, time.Minute, "training", func(st Status) bool { return st.State == StateTraining && st.OwnUpdates > 0 })
	}
	t.Log("both train", time.Now().Format("15:04:05.000"))
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := p2p.DefaultOptions()
	o.Run, o.Key, o.Log, o.ListenAddrs = n.m.Run, key, emptyLog{}, []string{"/ip4/127.0.0.1/tcp/0"}
	o.Bootstrap = []string{a.addr, b.addr}
	o.MDNS, o.DHT, o.RelayClient, o.HolePunching = false, false, false, false
	liar, err := p2p.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer liar.Close()
	for deadline := time.Now().Add(30 * time.Second); liar.Donors() < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the liar never joined the topic")
		}
	}
	// The liar keeps lying, as a liar would: a lie that arrives while a
	// catch-up round runs is judged by the round its next repetition starts
	// (a single lie may expire unjudged on a loaded machine, harmlessly).
	lying, stopLying := context.WithCancel(context.Background())
	lied := make(chan struct{})
	go func() {
		defer close(lied)
		for lying.Err() == nil {
			if err := liar.Announce(lying, p2p.State{Count: 1 << 62, Time: uint64(time.Now().UnixMilli())}); err != nil && lying.Err() == nil {
				t.Error(err)
				return
			}
			select {
			case <-lying.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	liarID := fmt.Sprintf("%016x", liar.Machine())
	for _, p := range []*testDaemon{a, b} {
		p.wait(t, 30*time.Second, "liar discredited", func(st Status) bool {
			for _, m := range st.Discredited {
				if m == liarID {
					return true
				}
			}
			return false
		})
	}
	stopLying()
	<-lied
	t.Log("liar discredited", time.Now().Format("15:04:05.000"))
	for _, p := range []*testDaemon{a, b} {
		own := p.status(t).OwnUpdates
		p.wait(t, 30*time.Second, "training after the lie", func(st Status) bool {
			return st.Contributing && !st.CatchingUp && st.OwnUpdates > own+8
		})
		t.Log(p.name, "trains again", time.Now().Format("15:04:05.000"))
	}
	// The liar goes on lying: ignored.
	if err := liar.Announce(context.Background(), p2p.State{Count: 1 << 62, Time: uint64(time.Now().UnixMilli())}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for _, p := range []*testDaemon{a, b} {
		if st := p.status(t); !st.Contributing || st.BestPeer >= 1<<62 {
			t.Fatalf("%s after a repeated lie: contributing %v, best peer %d", p.name, st.Contributing, st.BestPeer)
		}
		if c := strings.Count(p.log.String(), "not borne out"); c != 1 {
			t.Fatalf("%s logged the discredited liar %d times, want once", p.name, c)
		}
	}
}

// mountTmpfs mounts a tmpfs of the given size, or skips the test.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the disk-full test mounts a small tmpfs: run it as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root and mount): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fillDisk writes a file until the disk has at most leave bytes free. The
// store refuses appends well before the disk is full (it keeps room for
// Badger to flush its memtables: a flush into a full tmpfs is a SIGBUS in
// Badger's mmap, beyond any error handling), so leave is below that reserve.
func fillDisk(t *testing.T, path string, leave uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(path), &fs); err != nil {
			t.Fatal(err)
		}
		if fs.Bavail*uint64(fs.Bsize) <= leave {
			return
		}
		if _, err := f.Write(buf); err != nil {
			return
		}
	}
}

// A disk filled mid-run ends the daemon promptly with an ERROR line and an
// error (the process exits non-zero), loses nothing it acknowledged, and a
// restart after freeing space resumes.
func TestDiskFullEndsDaemon(t *testing.T) {
	tmp := mountTmpfs(t, "96m")
	n := newTestNet(t)
	b := n.start("b", n.home("b"), -1, nil, nil)
	ah := filepath.Join(tmp, "a")
	if err := os.MkdirAll(ah, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteManifest(filepath.Join(ah, ManifestFile), n.m); err != nil {
		t.Fatal(err)
	}
	a := n.start("a", ah, 0, []string{b.addr}, nil)
	var acked uint64
	a.wait(t, time.Minute, "training", func(st Status) bool { acked = st.OwnUpdates; return st.OwnUpdates >= 8 })
	filler := filepath.Join(tmp, "filler")
	fillDisk(t, filler, 16<<20)
	// Poll what a acknowledges until it ends.
	var err error
	deadline := time.After(time.Minute)
poll:
	for {
		select {
		case err = <-a.done:
			a.ended, a.err = true, err
			break poll
		case <-deadline:
			t.Fatalf("the daemon did not end within a minute of the disk filling: state %s", a.status(t).State)
		case <-time.After(20 * time.Millisecond):
			if resp, herr := httpStatus(a.api); herr == nil {
				acked = max(acked, resp.OwnUpdates)
			}
		}
	}
	if err == nil {
		t.Fatal("Start returned no error after the disk filled: the process would exit 0")
	}
	if log := a.log.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "fatal") {
		t.Fatalf("no ERROR line for %v:\n%s", err, tailLines(log, 20))
	}
	t.Logf("the daemon ended: %v (acknowledged %d own updates)", err, acked)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	a = n.start("a", ah, 0, []string{b.addr}, nil)
	st := a.status(t)
	if st.OwnUpdates < acked {
		t.Fatalf("after a restart: %d own updates, %d were acknowledged", st.OwnUpdates, acked)
	}
	a.wait(t, time.Minute, "training again", func(st Status) bool { return st.OwnUpdates > acked+8 })
}

func httpStatus(api string) (Status, error) {
	var st Status
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/api/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
