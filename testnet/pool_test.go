package testnet

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// A pool-mode run (zopeer init --pool): two peers train, a late joiner
// catches up from them and a restarted peer rebuilds its weights from its own
// log (summing coefficients per pool seed); all reach the same hash for the
// same set of updates.
func TestPoolRunJoinerAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := uninitNet(t, "--max-lag", "64")
	if err := n.Init(ctx, "--pool", "64"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(n.ManifestPath()); err != nil || !strings.Contains(string(b), `"pool":64`) {
		t.Fatalf("the manifest lacks the pool: %s %v", b, err)
	}
	addNodes(t, ctx, n, 2, "--steps", "25")
	before := converged(t, ctx, n)
	if before[0].Updates != 2*25*16 {
		t.Fatalf("%d updates, want %d", before[0].Updates, 2*25*16)
	}
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
	sts := converged(t, ctx, n)
	for _, st := range sts {
		if st.Pool != 64 {
			t.Errorf("%s reports pool %d, want 64", st.PeerID, st.Pool)
		}
	}
	checkTotals(t, sts, 2*25*16, 25*16, 32) // the restarted peer runs its --steps again
	if sts[0].WeightsHash == before[0].WeightsHash {
		t.Fatal("the joiner's updates did not change the weights")
	}
}
