package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/zopeer/zopeer/node"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/testnet"
)

// TestRunFlagsReachManifest parses testnet flags and creates the run as a
// testnet does (a real `zopeer init`, no peer started): every run parameter
// must be in the manifest, and a closed run must admit the testnet's own
// peers besides the --admit machines.
func TestRunFlagsReachManifest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := testnet.Build(ctx, "../../..", t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	const extra = "00000000000000aa"
	for _, tc := range []struct {
		name string
		args []string
		want func(t *testing.T, m store.Manifest, n *testnet.Net)
	}{
		{"open", []string{"--nodes", "3", "--run", "flags-open", "--lr", "3e-4", "--eps", "2e-3", "--pool", "64",
			"--pow-bits", "5", "--admission", "open", "--public-data", "--batch-size", "4", "--max-samples", "5000"},
			func(t *testing.T, m store.Manifest, n *testnet.Net) {
				if m.Run != "flags-open" || m.LR != 3e-4 || m.Eps != 2e-3 || m.Pool != 64 || m.MaxSamples != 5000 {
					t.Errorf("run %q lr %g eps %g pool %d max_samples %d", m.Run, m.LR, m.Eps, m.Pool, m.MaxSamples)
				}
				if m.Admission != "open" || m.PowBits != 5 || len(m.Admit) != 0 {
					t.Errorf("admission %q pow_bits %d admit %v, want open, 5, none", m.Admission, m.PowBits, m.Admit)
				}
				if m.Data == nil || m.Data.BatchSize != 4 {
					t.Errorf("public data %+v, want a data member with batch size 4", m.Data)
				}
				if len(n.Data.Shards) != 1 {
					t.Errorf("%d shards of public data, want 1 (every peer trains on all of it)", len(n.Data.Shards))
				}
				// The digest must be that of the records the peers train on
				// (all of the shard, since they get --eval-data), or they refuse to start.
				lm, tok, err := node.OpenModel(n.Data.Model)
				if err != nil {
					t.Fatal(err)
				}
				ds, err := node.LoadData(n.Data.Shards[0], tok, lm.Config().MaxPos, n.Data.Records, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				if m.Data != nil && m.Data.Digest != ds.Digest() {
					t.Errorf("public data digest %x, the peers' training records have %x", m.Data.Digest[:8], ds.Digest())
				}
			}},
		{"closed", []string{"--nodes", "2", "--late", "1", "--admission", "closed", "--admit", extra},
			func(t *testing.T, m store.Manifest, n *testnet.Net) {
				if m.Admission != "closed" || m.PowBits != 0 || m.Data != nil || m.Pool != 0 {
					t.Errorf("admission %q pow_bits %d data %v pool %d, want closed, 0, none, 0", m.Admission, m.PowBits, m.Data, m.Pool)
				}
				if len(m.Admit) != 4 || !slices.Contains(m.Admit, extra) {
					t.Fatalf("admit %v, want the 3 peers' machine ids and %s", m.Admit, extra)
				}
				for i := range 3 {
					id, _, err := node.Identity(filepath.Join(n.Dir, fmt.Sprintf("node%d", i)))
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Contains(m.Admit, fmt.Sprintf("%016x", id)) {
						t.Errorf("node%d's machine %s not admitted: %v", i, fmt.Sprintf("%016x", id), m.Admit)
					}
				}
			}},
		{"default", nil, func(t *testing.T, m store.Manifest, n *testnet.Net) {
			if m.Admission != "open" || m.PowBits != defaults.PowBits || m.Pool != 0 || m.Data != nil {
				t.Errorf("admission %q pow_bits %d pool %d data %v, want open, %d, 0, none", m.Admission, m.PowBits, m.Pool, m.Data, defaults.PowBits)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults
			fs := flags(&c, flag.ContinueOnError)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			n, err := newNet(ctx, c, t.TempDir(), bin)
			if n != nil {
				defer n.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := node.ReadManifest(n.ManifestPath())
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, m, n)
		})
	}
}
