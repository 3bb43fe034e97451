package testnet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/node"
)

var bin string

// TestMain builds the zopeer binary once for every multi-process test.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zopeer-testnet-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	// ZOPEER_TESTNET_RACE=1 runs the daemons under the race detector.
	bin, err = Build(ctx, "..", dir, os.Getenv("ZOPEER_TESTNET_RACE") == "1")
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Small, fast settings: the embedded model, 4 records per projected gradient,
// 16 per step, frequent announcements and anti-entropy rounds.
var fast = []string{"--batch-size", "4", "--samples", "16", "--state-every", "1s", "--sync-every", "1s",
	"--eval-every", "10", "--checkpoint-every", "20"}

func newNet(t *testing.T, args ...string) *Net {
	t.Helper()
	n := uninitNet(t, args...)
	if err := n.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

// uninitNet is a Net of real daemons with the fast settings, closed when the
// test ends; on failure it logs the tail of every peer's log and of the
// attacker tool's logs (mint, adversary) if there are any.
func uninitNet(t *testing.T, args ...string) *Net {
	t.Helper()
	n := &Net{Bin: bin, Dir: t.TempDir(), Args: append(append([]string(nil), fast...), args...)}
	t.Cleanup(func() {
		n.Close()
		for _, p := range n.Problems() {
			t.Error(p)
		}
		if t.Failed() {
			for _, nd := range n.Nodes() {
				t.Logf("--- %s log tail:\n%s", nd.Name, tail(nd.Log))
			}
			for _, name := range []string{"mint", "adversary"} {
				if _, err := os.Stat(filepath.Join(n.Dir, name+".log")); err == nil {
					t.Logf("--- %s log tail:\n%s", name, tail(filepath.Join(n.Dir, name+".log")))
				}
			}
		}
	})
	return n
}

func addNodes(t *testing.T, ctx context.Context, n *Net, k int, args ...string) {
	t.Helper()
	for range k {
		if _, err := n.Add(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
}

func converged(t *testing.T, ctx context.Context, n *Net) []node.Status {
	t.Helper()
	sts, err := n.Converged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return sts
}

func checkTotals(t *testing.T, sts []node.Status, wantOwn ...uint64) {
	t.Helper()
	var sum uint64
	for i, st := range sts {
		if i < len(wantOwn) && st.OwnUpdates != wantOwn[i] {
			t.Errorf("%s contributed %d updates, want %d", st.PeerID, st.OwnUpdates, wantOwn[i])
		}
		sum += st.OwnUpdates
	}
	for _, st := range sts {
		if st.Updates != sum {
			t.Errorf("%s holds %d updates; the peers contributed %d", st.PeerID, st.Updates, sum)
		}
	}
}

// Three daemons train, each applies the others' updates, and after their
// --steps all report the same set digest and weights hash.
func TestThreePeersConverge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := newNet(t, "--steps", "8")
	addNodes(t, ctx, n, 3)
	sts := converged(t, ctx, n)
	checkTotals(t, sts, 128, 128, 128)
	for _, st := range sts {
		if st.EvalLoss == nil || st.Peers < 2 {
			t.Errorf("%s: eval loss %v, %d peers", st.PeerID, st.EvalLoss, st.Peers)
		}
	}
}

// With a fifth of all inbound gossip dropped, anti-entropy still brings every
// peer to the same set and hash.
func TestAntiEntropyUnderGossipLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := newNet(t, "--steps", "10", "--test-drop-gossip", "0.2")
	addNodes(t, ctx, n, 3)
	sts := converged(t, ctx, n)
	checkTotals(t, sts, 160, 160, 160)
	var fetched uint64
	for _, st := range sts {
		fetched += st.P2P.SyncFetched
	}
	if fetched == 0 {
		t.Fatal("no batch came through anti-entropy: the loss hook did not bite")
	}
	t.Logf("batches recovered by anti-entropy: %d", fetched)
}

// A peer started after thousands of updates exist catches up before it
// contributes, reaches the same hash for the same set, then contributes.
func TestJoinerCatchesUpThenContributes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	steps := 70 // 3 × 70 × 16 = 3360 updates
	if testing.Short() {
		steps = 40 // 1920 updates
	}
	n := newNet(t, "--max-lag", "64")
	addNodes(t, ctx, n, 3, "--steps", fmt.Sprint(steps))
	before := converged(t, ctx, n)
	total := before[0].Updates
	start := time.Now()
	j, err := n.Add(ctx, "--steps", "4")
	if err != nil {
		t.Fatal(err)
	}
	// Until its first own update, the joiner must have everything that existed.
	for {
		st, err := j.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.OwnUpdates > 0 {
			if st.Updates < total {
				t.Fatalf("the joiner contributed with %d of %d updates", st.Updates, total)
			}
			break
		}
		if st.Updates >= total && st.WeightsHash != "" && st.HashUpdates == total && st.WeightsHash != before[0].WeightsHash {
			t.Fatalf("the joiner holds the same set as the others but another hash")
		}
		if ctx.Err() != nil {
			t.Fatal("the joiner never contributed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("joiner caught up with %d updates and contributed after %v", total, time.Since(start).Round(time.Millisecond))
	sts := converged(t, ctx, n)
	own := uint64(steps * 16)
	checkTotals(t, sts, own, own, own, 64)
}

// A peer killed with SIGKILL mid-run does not stall the others; restarted,
// it recovers from its own store and catches up.
func TestKilledPeerRecovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := newNet(t, "--steps", "40")
	addNodes(t, ctx, n, 3)
	victim, other := n.Nodes()[1], n.Nodes()[0]
	var own uint64
	for own < 64 {
		st, err := victim.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		own = st.OwnUpdates
		time.Sleep(50 * time.Millisecond)
	}
	victim.Kill()
	st0, err := other.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The others keep training without it.
	for {
		st, err := other.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.OwnUpdates >= st0.OwnUpdates+64 || !st.Contributing {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the others stalled after a peer was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := n.Restart(ctx, victim); err != nil {
		t.Fatal(err)
	}
	sts := converged(t, ctx, n)
	checkTotals(t, sts)
	for _, st := range sts {
		if st.PeerID == victim.PeerID && st.OwnUpdates < own {
			t.Fatalf("the restarted peer lost own updates: %d < %d acknowledged before the kill", st.OwnUpdates, own)
		}
	}
}

// kill -9 at random points (while training, replaying or catching up), a late
// joiner and 10% gossip loss: the run still passes every check of the testnet.
func TestChurnPassesChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dir := t.TempDir()
	d, err := WriteData(filepath.Join(dir, "data"), "", "", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	n := &Net{Bin: bin, Dir: dir, Data: d, Args: append(append([]string(nil), fast...), "--steps", "40", "--test-drop-gossip", "0.1")}
	t.Cleanup(func() {
		n.Close()
		if t.Failed() {
			for _, nd := range n.Nodes() {
				t.Logf("--- %s log tail:\n%s", nd.Name, tail(nd.Log))
			}
		}
	})
	if err := n.Init(ctx); err != nil {
		t.Fatal(err)
	}
	base, err := d.BaseLoss(ctx, 16)
	if err != nil {
		t.Fatal(err)
	}
	addNodes(t, ctx, n, 3)
	var events strings.Builder
	if _, err := (Schedule{Churn: 4, Late: 1, Steps: 40, Samples: 16, Seed: 2}).Run(ctx, n, &events); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + events.String())
	r := n.Check(ctx, base)
	var b strings.Builder
	r.Write(&b)
	t.Log("\n" + b.String())
	if !r.OK() {
		t.Fatal("checks failed")
	}
	restarts := 0
	for _, row := range r.Rows {
		restarts += row.Restarts
	}
	if restarts != 4 || len(r.Rows) != 4 {
		t.Fatalf("%d restarts of %d peers, want 4 of 4", restarts, len(r.Rows))
	}
}
