package testnet

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/node"
	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// The ban suite of issue 17, with the adversarial suite (ZOPEER_ADVERSARIAL=1):
// a public-data run of 6 honest daemons and 1 that flips the sign of every
// gradient it publishes (--test-lie). Honest peers run on different BLAS
// set-ups (OpenBLAS with 1 and 2 threads, pure-Go gonum), so a tolerance too
// tight for numerical noise would show as an accused honest peer.
//
//	ZOPEER_ADVERSARIAL=1 go test ./testnet -run AdversaryBan -v -timeout 30m
//
// Knobs: ZOPEER_BAN_FRACTIONS (comma-separated --verify-fraction values, one
// run each; default 0.1), ZOPEER_BAN_STEPS (honest steps, default 40),
// ZOPEER_ADV_OUT (write the chart and the table there, e.g. docs),
// ZOPEER_BAN_BASELINE=1 (also run the same net without verification, where
// the liar stays for the whole run, for the chart's comparison).

// banEnv are the honest peers' environments, by index.
var banEnv = [][]string{nil, {"OPENBLAS_NUM_THREADS=1"}, {"OPENBLAS_NUM_THREADS=2"}, {"ZOPEER_BLAS=go"}, {"OPENBLAS_NUM_THREADS=1"}, nil}

type banResult struct {
	fraction   float64
	caught     time.Duration // from the liar's start until every honest peer banned it
	liarOwn    uint64        // samples the liar had signed by then (its next_sample)
	verified   uint64        // honest peers' matching re-computations, all together
	maxExcess  float64       // the largest excess among them: the observed noise
	tolerance  float64
	updates    uint64
	evalLoss   float64
	curve      []Point
	banAt      time.Duration
	liarStarts time.Duration
}

func TestAdversaryBan(t *testing.T) {
	adversarial(t)
	_, base := setupAdversary(t)
	var fractions []float64
	for _, f := range strings.Split(cmpOr(os.Getenv("ZOPEER_BAN_FRACTIONS"), "0.1"), ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0 && v <= 1) {
			t.Fatalf("ZOPEER_BAN_FRACTIONS: %q", f)
		}
		fractions = append(fractions, v)
	}
	var results []banResult
	for _, f := range fractions {
		t.Run(fmt.Sprintf("fraction=%g", f), func(t *testing.T) {
			results = append(results, banRun(t, f, base))
		})
	}
	table := "| --verify-fraction | caught after | liar samples signed by then | honest re-computations that matched | largest honest excess | tolerance τ | final updates | final eval loss |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n"
	for _, r := range results {
		table += fmt.Sprintf("| %g | %.1f s | %d | %d | %.3g | %g | %d | %.4f |\n", r.fraction, r.caught.Seconds(), r.liarOwn, r.verified, r.maxExcess, r.tolerance, r.updates, r.evalLoss)
	}
	t.Log("\n" + table)
	var baseline []Point
	if os.Getenv("ZOPEER_BAN_BASELINE") == "1" {
		baseline = banBaseline(t, base)
	}
	if len(results) > 0 {
		writeBanChart(t, base, results[0], baseline, table)
	}
}

// banBaseline runs the same net with --verify-fraction 0: nobody verifies,
// the liar is never accused and lies for the whole run. It returns node0's
// eval losses.
func banBaseline(t *testing.T, base float64) []Point {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n, _, _ := publicNet(t, ctx, 7, 6, "--verify-fraction", "0", "--eval-every", "4")
	stopPoll := poll(ctx, n)
	defer stopPoll()
	waitOwn(t, ctx, n, 16)
	if _, err := n.Add(ctx, "--test-lie"); err != nil {
		t.Fatal(err)
	}
	sts := converged(t, ctx, n)
	stopPoll()
	n.Poll(ctx)
	t.Logf("without verification: %d updates (the liar's included), node0's eval loss %.4f (base %.4f)", sts[0].Updates, *sts[0].EvalLoss, base)
	var curve []Point
	for _, p := range n.History() {
		if p.Node == "node0" {
			curve = append(curve, p)
		}
	}
	return curve
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func banRun(t *testing.T, fraction, base float64) banResult {
	return banRunLiars(t, fraction, base, 1)
}

// TestAdversaryTwoLiars is TestAdversaryBan with two liars at once: each
// honest batch's basis soon names both, and every honest peer must judge
// the second accusation whichever ban it learnt first (the first ban keeps
// the banned machine's batches for that).
func TestAdversaryTwoLiars(t *testing.T) {
	adversarial(t)
	_, base := setupAdversary(t)
	banRunLiars(t, 0.1, base, 2)
}

// banRunLiars runs 6 honest peers with liars liars started together once
// the honest peers train.
func banRunLiars(t *testing.T, fraction, base float64, liars int) banResult {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	r := banResult{fraction: fraction}
	n, m, honest := publicNet(t, ctx, 6+liars, 6, "--verify-fraction", strconv.FormatFloat(fraction, 'g', -1, 64), "--eval-every", "4")
	r.tolerance = m.Data.Tolerance
	stopPoll := poll(ctx, n)
	defer stopPoll()
	// The liars join once the honest peers train: their lies meet verifiers.
	waitOwn(t, ctx, n, 16)
	var liarNodes []*Node
	var liarIDs []string
	for range liars {
		liar, err := n.Add(ctx, "--test-lie")
		if err != nil {
			t.Fatal(err)
		}
		liarNodes, liarIDs = append(liarNodes, liar), append(liarIDs, liar.Machine(n))
	}
	start := time.Now()
	r.liarStarts = time.Since(n.start)
	waitAll(t, ctx, honest, fmt.Sprintf("the liars %v banned by every honest peer", liarIDs), func(st node.Status) bool {
		for _, id := range liarIDs {
			if !slices.Contains(st.Verification.Banned, id) {
				return false
			}
		}
		return true
	})
	r.caught = time.Since(start)
	r.banAt = time.Since(n.start)
	for i, liar := range liarNodes {
		// A liar's own log drops its updates once it confirms its own ban;
		// its next sample still says how many it signed.
		lst, err := liar.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r.liarOwn += lst.NextSample
		t.Logf("liar %s banned by all 6 honest peers %.1f s after it started, having signed %d samples", liarIDs[i], r.caught.Seconds(), lst.NextSample)
		if err := liar.Stop(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	sts := converged(t, ctx, n)
	stopPoll()
	n.Poll(ctx)
	var honestOwn uint64
	for i, st := range sts {
		nd := honest[i]
		honestOwn += st.OwnUpdates
		v := st.Verification
		r.verified += v.Verified
		r.maxExcess = max(r.maxExcess, v.MaxExcess)
		t.Logf("%s %v: verified %d (max excess %.3g), skipped %d %v, accusations made %d confirmed %d rejected %d dropped %d, banned %v",
			nd.Name, nd.Env, v.Verified, v.MaxExcess, v.Skipped, v.SkippedBy, v.AccusationsMade, v.AccusationsConfirmed, v.AccusationsRejected, v.AccusationsDropped, v.Banned)
		if v.AccusationsRejected > 0 {
			t.Errorf("%s rejected %d accusations: some peer accused an honest batch", nd.Name, v.AccusationsRejected)
		}
		for _, e := range st.Excluded {
			if !slices.Contains(liarIDs, e.Machine) {
				t.Errorf("%s excluded %s (%s), which is honest", nd.Name, e.Machine, e.Reason)
			} else if e.Reason != node.ReasonAccusation {
				t.Errorf("%s excluded the liar %s for %q, want %q", nd.Name, e.Machine, e.Reason, node.ReasonAccusation)
			}
		}
		if v.Verified == 0 && fraction >= 0.1 {
			t.Errorf("%s re-computed nothing at --verify-fraction %g", nd.Name, fraction)
		}
	}
	for _, st := range sts {
		if st.Updates != honestOwn {
			t.Errorf("%s holds %d updates, the honest peers contributed %d: the set is not the honest-only set", st.PeerID, st.Updates, honestOwn)
		}
	}
	r.updates, r.evalLoss = sts[0].Updates, *sts[0].EvalLoss
	if !(r.evalLoss < base) {
		t.Errorf("eval loss %.4f did not improve on the base model's %.4f", r.evalLoss, base)
	}
	for _, p := range n.History() {
		if !slices.ContainsFunc(liarNodes, func(l *Node) bool { return l.Name == p.Node }) {
			r.curve = append(r.curve, p)
		}
	}
	if err := n.StopAll(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	replayHonest(t, ctx, n, honest[0], liarIDs, honestOwn, sts[0].WeightsHash)
	return r
}

// replayHonest exports a stopped honest peer's log with `zopeer log export`
// and replays it independently of the peers' store: base weights from the
// embedded model, every exported update applied by a fresh engine. The
// export must hold no update of the liar, the accusation as the liar's
// exclusion evidence, and want updates; the replay must give wantHash.
func replayHonest(t *testing.T, ctx context.Context, n *Net, nd *Node, liars []string, want uint64, wantHash string) {
	t.Helper()
	path := filepath.Join(n.Dir, "export.jsonl")
	if out, err := exec.CommandContext(ctx, n.Bin, "log", "export", "--home", nd.Home, "--out", path).CombinedOutput(); err != nil {
		t.Fatalf("zopeer log export: %v\n%s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := node.ReadManifest(n.ManifestPath())
	if err != nil {
		t.Fatal(err)
	}
	var us []zo.Update
	banned := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Machine  string `json:"machine"`
			Sample   uint64 `json:"sample"`
			Exp      uint8  `json:"exp"`
			Code     int8   `json:"code"`
			Excluded string `json:"excluded"`
			Evidence string `json:"evidence"`
		}
		var end struct {
			End bool `json:"end"`
		}
		if json.Unmarshal(sc.Bytes(), &end); end.End {
			continue // the trailer: counts, checked by the replay below
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		switch {
		case line.Excluded != "":
			if !slices.Contains(liars, line.Excluded) {
				t.Errorf("the export excludes %s, which is honest", line.Excluded)
				continue
			}
			raw, err := hex.DecodeString(line.Evidence)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := p2p.DecodeEvidence(raw, p2p.NewRunTag(m.Run))
			if err != nil || !ev.IsAccusation() {
				t.Errorf("the liar's exclusion evidence is not a valid accusation: %v", err)
			}
			banned++
		case line.Machine != "":
			if slices.Contains(liars, line.Machine) {
				t.Fatalf("the export holds the liar's update %s/%d", line.Machine, line.Sample)
			}
			id, err := strconv.ParseUint(line.Machine, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			us = append(us, zo.Update{Machine: id, Sample: line.Sample, Exp: line.Exp, Code: line.Code})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if banned != len(liars) {
		t.Errorf("the export lists %d exclusions of the %d liars", banned, len(liars))
	}
	if uint64(len(us)) != want {
		t.Errorf("the export holds %d updates, the honest peers contributed %d", len(us), want)
	}
	lm, _, err := node.OpenModel(filepath.Join(nd.Home, "default-model"))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := node.TrainableSpecs(lm, m.Params["trainable"])
	if err != nil {
		t.Fatal(err)
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Config()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := zo.NewEngine(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	eng.Apply(us)
	if got := fmt.Sprintf("%x", eng.Weights().Hash()); got != wantHash {
		t.Errorf("an independent replay of the honest-only export gives weights hash %.16s, the peers hold %.16s", got, wantHash)
	} else {
		t.Logf("independent replay of %d honest updates from %s's export: weights hash %.16s, as every honest peer", len(us), nd.Name, got)
	}
}

// waitAll waits until every peer of nodes reports a status with cond.
func waitAll(t *testing.T, ctx context.Context, nodes []*Node, what string, cond func(node.Status) bool) {
	t.Helper()
	for {
		all := true
		for _, nd := range nodes {
			st, err := nd.Status(ctx)
			if err != nil || !cond(st) {
				all = false
				break
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// publicNet creates a public-data run (`zopeer init --public-data
// --batch-size 4`), mints identities for peers daemons, and starts the
// first honest ones with banEnv's environments. It returns the net, the
// manifest and the honest peers.
func publicNet(t *testing.T, ctx context.Context, peers, honest int, args ...string) (*Net, store.Manifest, []*Node) {
	t.Helper()
	n := uninitNet(t, append([]string{"--steps", strconv.Itoa(envInt("ZOPEER_BAN_STEPS", 40))}, args...)...)
	if _, err := n.InitRun(ctx, RunFlags{PowBits: intp(8)}, "--public-data", "--batch-size", "4"); err != nil {
		t.Fatal(err)
	}
	m, err := node.ReadManifest(n.ManifestPath())
	if err != nil {
		t.Fatal(err)
	}
	if m.Data == nil {
		t.Fatal("zopeer init --public-data wrote no data member")
	}
	t.Logf("public-data run: grad_bound %g, tolerance %g, batch size %d", m.GradBound, m.Data.Tolerance, m.Data.BatchSize)
	if _, err := n.MintIdentities(ctx, m.Run, m.PowBits, peers, keyCache); err != nil {
		t.Fatal(err)
	}
	var nodes []*Node
	for i := range honest {
		nd, err := n.AddEnv(ctx, banEnv[i])
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	return n, m, nodes
}

func writeBanChart(t *testing.T, base float64, r banResult, baseline []Point, table string) {
	dir := os.Getenv("ZOPEER_ADV_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "adversary-ban.svg")
	f, err := os.Create(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	pts := r.curve
	if baseline != nil {
		pts = nil
		for _, p := range r.curve {
			if p.Node == "node0" {
				p.Node = fmt.Sprintf("verify %g: liar banned", r.fraction)
				pts = append(pts, p)
			}
		}
		for _, p := range baseline {
			p.Node = "no verification: liar stays"
			pts = append(pts, p)
		}
	}
	ch := Chart{Title: fmt.Sprintf("node0's eval loss: 6 honest peers and 1 sign-flipping liar, public data, --verify-fraction %g", r.fraction), Points: pts, BaseLoss: base,
		Marks:      []Mark{{Elapsed: r.liarStarts, Label: "liar starts"}, {Elapsed: r.banAt, Label: "liar banned everywhere", Color: "#d62728"}},
		MarkLegend: "green: the liar starts, red: banned by every honest peer (verified run)"}
	if err := ch.WriteSVG(f); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "adversary-ban.md"), []byte(table), 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("chart: %s", path)
}

// A false accuser (--test-accuse: it accuses every sample it re-computes)
// on a public-data run of 4 honest peers: every honest peer rejects its
// accusations, bans nobody, and the honest peers
// converge on one set digest and weights hash. (That a peer then ignores
// the accuser, after 3 rejections, is p2p's TestRejectedAccuserIgnored.)
func TestAdversaryFalseAccuser(t *testing.T) {
	adversarial(t)
	_, base := setupAdversary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n, _, honest := publicNet(t, ctx, 5, 4, "--verify-fraction", "0.1")
	accuser, err := n.Add(ctx, "--test-accuse", "--verify-fraction", "0.1")
	if err != nil {
		t.Fatal(err)
	}
	accID := accuser.Machine(n)
	// Wait until every honest peer has judged some of its accusations. (The
	// accuser bans each machine it accuses locally, after which the bases of
	// the batches it could verify name a machine it excluded: it accuses a
	// few, not all.)
	waitAll(t, ctx, honest, "a false accusation rejected by every honest peer", func(st node.Status) bool {
		return st.Verification.AccusationsRejected > 0
	})
	ast, err := accuser.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := accuser.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	sts := converged(t, ctx, n)
	t.Logf("false accuser %s made %d accusations", accID, ast.Verification.AccusationsMade)
	for i, st := range sts {
		v := st.Verification
		t.Logf("%s: rejected %d, confirmed %d, dropped %d, excluded %v", honest[i].Name, v.AccusationsRejected, v.AccusationsConfirmed, v.AccusationsDropped, st.Excluded)
		if v.AccusationsConfirmed > 0 || len(st.Excluded) > 0 {
			t.Errorf("%s banned an honest machine on a false accusation: %+v", honest[i].Name, st.Excluded)
		}
		if v.AccusationsRejected > ast.Verification.AccusationsMade {
			t.Errorf("%s rejected %d accusations, the accuser made %d", honest[i].Name, v.AccusationsRejected, ast.Verification.AccusationsMade)
		}
		if v.AccusationsRejected > maxRejectedSeen {
			t.Errorf("%s re-computed %d accusations of one accuser: it should ignore it after 3 (plus those already queued)", honest[i].Name, v.AccusationsRejected)
		}
		if !(*st.EvalLoss < base) {
			t.Errorf("%s: eval loss %.4f did not improve on the base model's %.4f", honest[i].Name, *st.EvalLoss, base)
		}
	}
}

// maxRejectedSeen bounds the false accusations an honest peer re-computes:
// 3 rejections make it ignore the accuser on gossip, and at most 4 more
// (the accuser's share of the queue) were already waiting.
const maxRejectedSeen = 3 + 4
