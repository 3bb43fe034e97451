package testnet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zopeer/zopeer/node"
	"github.com/zopeer/zopeer/store"
)

// Report is the outcome of a run's checks.
type Report struct {
	BaseLoss float64
	Union    uint64 // updates any peer ever logged
	Rows     []Row
	Failures []string // empty when every check passed
}

// Row is one peer's line of the summary.
type Row struct {
	Name     string
	Restarts int
	Own      uint64 // its own updates in its log
	Total    uint64 // updates in its log
	Hash     string // weights hash at the end
	EvalLoss float64
	BytesIn  int64 // over all its processes
	BytesOut int64
	Live     bool // running when the checks started
}

// OK reports whether every check passed.
func (r Report) OK() bool { return len(r.Failures) == 0 }

func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// Check quiesces the net (Settled) and checks it (Verify).
func (n *Net) Check(ctx context.Context, baseLoss float64) Report {
	sts, err := n.Settled(ctx)
	r := n.Verify(ctx, sts, baseLoss)
	if err != nil {
		r.Failures = append([]string{err.Error()}, r.Failures...)
	}
	return r
}

// Verify checks a quiet net, given the live peers' last statuses: every live
// peer reports the same set digest and weights hash, and an eval loss below
// baseLoss; then it stops every peer, reads every peer's update log from its
// store, and checks that each live peer's log holds exactly the union of all
// logs (nothing any peer logged is lost) and every own update any peer ever
// reported.
func (n *Net) Verify(ctx context.Context, sts map[*Node]node.Status, baseLoss float64) Report {
	r := Report{BaseLoss: baseLoss}
	nodes := n.Nodes()
	var ref *node.Status
	var refName string
	for _, nd := range nodes {
		st, ok := sts[nd]
		if !ok {
			continue
		}
		if ref == nil {
			ref, refName = &st, nd.Name
		}
		switch {
		case st.SetDigest != ref.SetDigest:
			r.fail("%s holds another set of updates (%d, digest %.12s) than %s (%d, %.12s)", nd.Name, st.Updates, st.SetDigest, refName, ref.Updates, ref.SetDigest)
		case st.WeightsHash != ref.WeightsHash:
			r.fail("%s has weights hash %.16s for the set that gives %.16s on %s: replicas diverged", nd.Name, st.WeightsHash, ref.WeightsHash, refName)
		}
		if len(st.Mismatches) > 0 || len(st.Flagged) > 0 {
			r.fail("%s saw %d weights-hash mismatches and flagged %d machines", nd.Name, len(st.Mismatches), len(st.Flagged))
		}
		if st.EvalLoss == nil || !(*st.EvalLoss < baseLoss) {
			r.fail("%s: eval loss %v did not improve on the base model's %.4f", nd.Name, st.EvalLoss, baseLoss)
		}
	}
	if err := n.StopAll(30 * time.Second); err != nil {
		r.fail("%v", err)
	}

	logs := map[*Node]store.Summary{}
	digests := map[*Node]string{}
	union := store.Summary{}
	for _, nd := range nodes {
		sum, dig, err := readLog(ctx, nd.Home)
		if err != nil {
			r.fail("%v", err)
			continue
		}
		logs[nd], digests[nd] = sum, dig
		for m, rs := range sum {
			for _, rg := range rs {
				for s := rg.First; s <= rg.Last; s++ {
					union.Add(m, s)
				}
			}
		}
	}
	r.Union = union.Count()
	for _, nd := range nodes {
		st, live := sts[nd]
		n.mu.Lock()
		row := Row{Name: nd.Name, Restarts: nd.restarts, Live: live, Hash: st.WeightsHash,
			BytesIn: nd.bytesIn + nd.curIn, BytesOut: nd.bytesOut + nd.curOut}
		machine, acked := nd.machine, nd.ackOwn
		n.mu.Unlock()
		if st.EvalLoss != nil {
			row.EvalLoss = *st.EvalLoss
		}
		sum, ok := logs[nd]
		if ok {
			row.Own, row.Total = sum[machine].Count(), sum.Count()
		}
		r.Rows = append(r.Rows, row)
		for s := range acked {
			if !union.Contains(machine, s) {
				r.fail("%s reported %d own updates, but no log holds its sample %d: lost", nd.Name, acked, s)
				break
			}
		}
		if !ok || !live {
			continue
		}
		if miss := union.Count() - sum.Count(); miss > 0 {
			r.fail("%s's log lacks %d of the %d updates the peers logged", nd.Name, miss, union.Count())
		}
		if digests[nd] != st.SetDigest {
			r.fail("%s's log has digest %.12s, its last status %.12s", nd.Name, digests[nd], st.SetDigest)
		}
	}
	seen := map[string]int{}
	for _, p := range n.Problems() {
		name, _, _ := strings.Cut(p, ": ")
		if seen[name]++; seen[name] == 1 {
			r.fail("log of %s: %.200s", name, p)
		}
	}
	for name, k := range seen {
		if k > 1 {
			r.fail("log of %s: %d such lines in all", name, k)
		}
	}
	return r
}

// OwnLogged is the number of its own updates a stopped peer's log holds.
func (n *Net) OwnLogged(ctx context.Context, nd *Node) (uint64, error) {
	if nd.Alive() {
		return 0, fmt.Errorf("testnet: %s is running", nd.Name)
	}
	sum, _, err := readLog(ctx, nd.Home)
	if err != nil {
		return 0, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return sum[nd.machine].Count(), nil
}

// readLog opens a stopped peer's store and returns its summary and set digest.
func readLog(ctx context.Context, home string) (store.Summary, string, error) {
	m, err := node.ReadManifest(filepath.Join(home, node.ManifestFile))
	if err != nil {
		return nil, "", err
	}
	s, err := store.Open(ctx, filepath.Join(home, "store"), m, store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return nil, "", fmt.Errorf("testnet: log of %s: %w", home, err)
	}
	defer s.Close()
	return s.Summary().Clone(), s.Digest().String(), nil
}

// Write prints the summary table and the checks' verdict.
func (r Report) Write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\trestarts\town updates\ttotal updates\tweights hash\teval loss\tMB in\tMB out\tB/update\t")
	for _, row := range r.Rows {
		hash, eval := "-", "-"
		if row.Live {
			hash, eval = fmt.Sprintf("%.12s", row.Hash), fmt.Sprintf("%.4f", row.EvalLoss)
		}
		per := "-"
		if row.Total > 0 {
			per = fmt.Sprintf("%.0f", float64(row.BytesIn+row.BytesOut)/float64(row.Total))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%.2f\t%.2f\t%s\t\n", row.Name, row.Restarts, row.Own, row.Total, hash, eval,
			float64(row.BytesIn)/1e6, float64(row.BytesOut)/1e6, per)
	}
	tw.Flush()
	var final float64
	for _, row := range r.Rows {
		if row.Live {
			final = row.EvalLoss
			break
		}
	}
	fmt.Fprintf(w, "\nupdates logged by any peer: %d; eval loss: base model %.4f, final %.4f (%+.1f%%)\n",
		r.Union, r.BaseLoss, final, 100*(final-r.BaseLoss)/r.BaseLoss)
	if r.OK() {
		fmt.Fprintln(w, "PASS: every live peer holds every update any peer logged, all report the same set digest and weights hash, and the eval loss improved")
		return
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAIL:", f)
	}
}
