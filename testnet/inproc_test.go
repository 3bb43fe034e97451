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
	"github.com/zopeer/zopeer/store"
)

// Tiny steps for peers that share this process (and, under -race, a slow
// detector): 2 records per projected gradient, 4 per step, an eval only at
// the end of a peer's steps.
var tiny = []string{"--batch-size", "2", "--samples", "4", "--state-every", "500ms", "--sync-every", "500ms",
	"--eval-every", "1000", "--checkpoint-every", "5"}

// newInProcess returns an in-process net of the run created in node0's home,
// with a shard of the embedded training data per peer, and the base model's
// eval loss.
func newInProcess(t *testing.T, shards int, args ...string) (*Net, float64) {
	t.Helper()
	dir := t.TempDir()
	d, err := WriteData(filepath.Join(dir, "data"), "", "", "", shards)
	if err != nil {
		t.Fatal(err)
	}
	n := &Net{Dir: dir, Data: d, Args: append(append([]string(nil), tiny...), args...)}
	t.Cleanup(func() {
		n.Close()
		if t.Failed() {
			for _, nd := range n.Nodes() {
				t.Logf("--- %s log tail:\n%s", nd.Name, tail(nd.Log))
			}
		}
	})
	if err := n.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	base, err := d.BaseLoss(context.Background(), 16)
	if err != nil {
		t.Fatal(err)
	}
	return n, base
}

func steps(short, long int) string {
	if testing.Short() {
		return fmt.Sprint(short)
	}
	return fmt.Sprint(long)
}

// Three peers in this process, each on its own shard, one of them stopped
// and restarted mid-run, pass every check of a testnet run.
func TestInProcessRunPasses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, base := newInProcess(t, 3, "--steps", steps(4, 12))
	addNodes(t, ctx, n, 2)
	// Restart node1 once it has logged a step: it resumes from its log.
	victim := n.Nodes()[1]
	for n.Poll(ctx)[victim].OwnUpdates == 0 {
		if ctx.Err() != nil {
			t.Fatal("node1 never contributed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	victim.Kill()
	if err := n.Restart(ctx, victim, "--steps", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Add(ctx); err != nil {
		t.Fatal(err)
	}
	r := n.Check(ctx, base)
	var b strings.Builder
	r.Write(&b)
	t.Log("\n" + b.String())
	if !r.OK() {
		t.Fatal("checks failed")
	}
	var own uint64
	for _, row := range r.Rows {
		own += row.Own
		if row.Total != r.Union {
			t.Errorf("%s holds %d of %d updates", row.Name, row.Total, r.Union)
		}
	}
	if own != r.Union || own == 0 {
		t.Errorf("own updates add up to %d, the union of the logs holds %d", own, r.Union)
	}
}

// A peer whose manifest has another learning rate applies the same updates
// differently: the check must report diverged replicas.
func TestCheckCatchesDivergedWeights(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, base := newInProcess(t, 2, "--steps", steps(2, 6))
	addNodes(t, ctx, n, 1)
	m, err := node.ReadManifest(filepath.Join(n.Dir, "node0", node.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m.LR *= 2
	home := filepath.Join(n.Dir, "node1")
	if err := writeManifest(home, m); err != nil {
		t.Fatal(err)
	}
	addNodes(t, ctx, n, 1)
	r := n.Check(ctx, base)
	var b strings.Builder
	r.Write(&b)
	t.Log("\n" + b.String())
	if !failedWith(r, "replicas diverged") {
		t.Fatalf("the check passed diverged replicas: %q", r.Failures)
	}
	if failedWith(r, "lacks") || failedWith(r, "another set") {
		t.Fatalf("the sets should agree: %q", r.Failures)
	}
}

// A peer cut off from the others (no bootstrap, no discovery) trains alone:
// the check must report the updates the others never got.
func TestCheckCatchesMissingUpdates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, base := newInProcess(t, 3, "--steps", steps(2, 6))
	addNodes(t, ctx, n, 2)
	m, err := node.ReadManifest(filepath.Join(n.Dir, "node0", node.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeManifest(filepath.Join(n.Dir, "node2"), m); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Add(ctx, "--bootstrap="); err != nil {
		t.Fatal(err)
	}
	sts, err := n.Quiet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := n.Verify(ctx, sts, base)
	var b strings.Builder
	r.Write(&b)
	t.Log("\n" + b.String())
	if !failedWith(r, "lacks") {
		t.Fatalf("the check missed updates held by one peer only: %q", r.Failures)
	}
}

// writeManifest puts m in home, as `zopeer init` or a fetch from peers would.
func writeManifest(home string, m store.Manifest) error {
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	return node.WriteManifest(filepath.Join(home, node.ManifestFile), m)
}

func failedWith(r Report, s string) bool {
	for _, f := range r.Failures {
		if strings.Contains(f, s) {
			return true
		}
	}
	return false
}
