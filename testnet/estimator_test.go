package testnet

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// Runs under the other estimators (zopeer init --estimator, docs/LEARNING.md)
// converge across real daemons as MeZO's do: two peers train, a late joiner
// catches up and contributes, a restarted peer rebuilds its weights from its
// log, and all reach one hash for one set of updates, with no batch refused.
// The one-sided estimator shares a base pass among Q updates, so a producer's
// batch holds proposals that share one unperturbed loss: what peers apply
// must still be the codes alone.
func TestEstimatorRunsConverge(t *testing.T) {
	for _, est := range []string{"onesided=4", "scale=vectors,onesided=4"} {
		t.Run(est, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			n := uninitNet(t)
			if err := n.Init(ctx, "--estimator", est); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(n.ManifestPath())
			if err != nil || !strings.Contains(string(b), `"estimator"`) {
				t.Fatalf("the manifest names no estimator: %s %v", b, err)
			}
			addNodes(t, ctx, n, 2, "--steps", "20")
			before := converged(t, ctx, n)
			sts := joinAndRestart(t, ctx, n)
			for _, st := range sts {
				for why, c := range st.Refused {
					if c != 0 {
						t.Errorf("%s refused %d batches (%s)", st.PeerID, c, why)
					}
				}
			}
			checkTotals(t, sts, 2*20*16, 20*16, 32) // the restarted peer runs its --steps again
			if sts[0].WeightsHash == before[0].WeightsHash {
				t.Fatal("the joiner's updates did not change the weights")
			}
			t.Logf("%s: %d updates, one hash %.12s, eval loss %.4f", est, sts[0].Updates, sts[0].WeightsHash, *sts[0].EvalLoss)
		})
	}
}
