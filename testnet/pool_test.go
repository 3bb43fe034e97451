package testnet

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/node"
)

// A pool-mode run (zopeer init --pool): two peers train, a late joiner
// catches up from them and a restarted peer rebuilds its weights from its own
// log (summing coefficients per pool seed); all reach the same hash for the
// same set of updates.
func TestPoolRunJoinerAndRestart(t *testing.T) { poolJoinerAndRestart(t, 0) }

// The same for a FedKSeed-Pro run (zopeer init --pool 64 --pool-choices 8,
// docs/PROTOCOL.md §12.1): every batch carries its slots (a batch refused
// for them would leave the peers apart), the late joiner and the restarted
// peer reach the same hash, and no peer refused a batch for its slots.
func TestProPoolRunJoinerAndRestart(t *testing.T) { poolJoinerAndRestart(t, 8) }

// poolJoinerAndRestart runs the pool test with m pool choices (0: the
// uniform rule).
func poolJoinerAndRestart(t *testing.T, m int) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := uninitNet(t, "--max-lag", "64")
	args, want := []string{"--pool", "64"}, `"pool":64`
	if m > 0 {
		args, want = append(args, "--pool-choices", fmt.Sprint(m)), fmt.Sprintf(`"pool":64,"pool_choices":%d`, m)
	}
	if err := n.Init(ctx, args...); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(n.ManifestPath()); err != nil || !strings.Contains(string(b), want) {
		t.Fatalf("the manifest lacks %s: %s %v", want, b, err)
	}
	addNodes(t, ctx, n, 2, "--steps", "25")
	before := converged(t, ctx, n)
	if before[0].Updates != 2*25*16 {
		t.Fatalf("%d updates, want %d", before[0].Updates, 2*25*16)
	}
	sts := joinAndRestart(t, ctx, n)
	for _, st := range sts {
		if st.Pool != 64 || st.PoolChoices != uint32(m) {
			t.Errorf("%s reports pool %d, %d choices; want 64, %d", st.PeerID, st.Pool, st.PoolChoices, m)
		}
		if n := st.Refused["pool"]; n != 0 {
			t.Errorf("%s refused %d batches for their pool slots", st.PeerID, n)
		}
	}
	checkTotals(t, sts, 2*25*16, 25*16, 32) // the restarted peer runs its --steps again
	if sts[0].WeightsHash == before[0].WeightsHash {
		t.Fatal("the joiner's updates did not change the weights")
	}
}

// joinAndRestart adds a late joiner that contributes 2 steps, stops and
// restarts the first peer (which runs its --steps again and rebuilds its
// weights from its log), and returns the statuses once all agree.
func joinAndRestart(t *testing.T, ctx context.Context, n *Net) []node.Status {
	t.Helper()
	if _, err := n.Add(ctx, "--steps", "2"); err != nil {
		t.Fatal(err)
	}
	nd := n.Nodes()[0]
	if err := nd.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(ctx, nd); err != nil {
		t.Fatal(err)
	}
	return converged(t, ctx, n)
}
