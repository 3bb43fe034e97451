// Command testnet runs a local zopeer network on loopback and checks it: N
// `zopeer start` daemons, each with its own home, ports and shard of the
// data, optionally with churn (kill -9 and restart), late joiners and gossip
// loss; at the end every live peer must hold every update any peer logged,
// report the same set digest and weights hash, and have a lower eval loss
// than the base model. It prints live progress and a summary table, writes
// an SVG chart of eval loss, and exits 1 if a check fails. With --scaling it
// runs the same per-peer budget with several network sizes instead.
//
// Run it from the repository root (testnet/run.sh does): go run ./testnet/cmd/testnet --help
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zopeer/zopeer/model/dataset"
	"github.com/zopeer/zopeer/node"
	"github.com/zopeer/zopeer/testnet"
)

// config holds every flag; defaults is the one place their defaults live.
type config struct {
	Nodes     int
	Late      int
	Steps     int
	Samples   int
	BatchSize int
	EvalEvery int
	Churn     int
	Drop      float64
	Seed      uint64
	Dir       string
	Chart     string
	Zopeer    string
	Model     string
	Data      string
	EvalData  string
	Every     time.Duration
	Timeout   time.Duration
	Scaling   string
	Target    float64
	// Run parameters, given to `zopeer init` (they go into the manifest);
	// empty or zero leaves zopeer's default.
	Run        string
	Dist       string
	Eps        float64
	LR         float64
	LRWarmup   uint64
	LRDecay    uint64
	Trainable  string
	Estimator  string
	GradBound  float64
	MaxSamples uint64
	Pool       uint32
	Admission  string
	PowBits    int
	Admit      string
	PublicData bool
	// Local settings every peer's `zopeer start` gets.
	Window  bool
	Overlap int
}

var defaults = config{
	Nodes:     4,
	Steps:     40,
	Samples:   16,
	BatchSize: 16,
	EvalEvery: 5,
	Seed:      1,
	Every:     2 * time.Second,
	Timeout:   15 * time.Minute,
	Target:    0.5,
	// zopeer's own default, 20 bits, costs each peer ~13 CPU-seconds of
	// minting; 8 is instant on loopback.
	PowBits: 8,
}

func main() {
	c := defaults
	fs := flags(&c, flag.ExitOnError)
	fs.Parse(os.Args[1:])
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var err error
	if c.Scaling != "" {
		err = scaling(ctx, c, os.Stdout)
	} else {
		var r testnet.Report
		r, err = runOnce(ctx, c, os.Stdout)
		if err == nil && !r.OK() {
			err = errors.New("checks failed")
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testnet:", err)
		os.Exit(1)
	}
}

// flags is the command's flag set, writing into c.
func flags(c *config, h flag.ErrorHandling) *flag.FlagSet {
	fs := flag.NewFlagSet("testnet", h)
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "peers started at the beginning")
	fs.IntVar(&c.Late, "late", c.Late, "late joiners: peers started mid-run, which catch up and then contribute")
	fs.IntVar(&c.Steps, "steps", c.Steps, "steps each peer contributes (each step is --samples updates)")
	fs.IntVar(&c.Samples, "samples", c.Samples, "projected gradients (updates) per step")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "records per projected gradient")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "steps between a peer's evaluations")
	fs.IntVar(&c.Churn, "churn", c.Churn, "churn events: kill -9 a random live peer, restart it 0.3-1.5 s later")
	fs.Float64Var(&c.Drop, "drop", c.Drop, "fraction of inbound gossip every peer drops (anti-entropy must repair it)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the churn and join schedule")
	fs.StringVar(&c.Dir, "dir", c.Dir, "directory for homes, logs and shards (default: a new temporary directory, kept)")
	fs.StringVar(&c.Chart, "chart", c.Chart, "SVG chart of eval loss against updates and wall time (default: eval-loss.svg in --dir)")
	fs.StringVar(&c.Zopeer, "zopeer", c.Zopeer, "zopeer binary (default: go build ./cmd/zopeer)")
	fs.StringVar(&c.Model, "model", c.Model, "base model directory (default: the embedded model)")
	fs.StringVar(&c.Data, "data", c.Data, "training records (.jsonl), split into one shard per peer (default: the embedded task)")
	fs.StringVar(&c.EvalData, "eval-data", c.EvalData, "held-out records every peer evaluates on (default: the embedded task's)")
	fs.DurationVar(&c.Every, "every", c.Every, "between progress lines")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "give up (and fail) after this long")
	fs.StringVar(&c.Scaling, "scaling", c.Scaling, "comma-separated network sizes (e.g. 1,2,4,8): run each with the same per-peer budget and print a table")
	fs.Float64Var(&c.Target, "target", c.Target, "with --scaling: the eval loss whose first crossing is reported")
	fs.StringVar(&c.Run, "run", c.Run, "run identifier (default: zopeer's)")
	fs.StringVar(&c.Dist, "dist", c.Dist, "perturbation distribution: rademacher or gauss4 (default: zopeer's)")
	fs.Float64Var(&c.Eps, "eps", c.Eps, "perturbation scale ε (0: zopeer's default)")
	fs.Float64Var(&c.LR, "lr", c.LR, "learning rate η per update (0: zopeer's default)")
	fs.Uint64Var(&c.LRWarmup, "lr-warmup", c.LRWarmup, "ramp η up over each machine's first N samples (0: off)")
	fs.Uint64Var(&c.LRDecay, "lr-decay", c.LRDecay, "decay η linearly to 0 at each machine's sample N (0: off)")
	fs.StringVar(&c.Trainable, "trainable", c.Trainable, "regexp of parameter names to train (default: all)")
	fs.StringVar(&c.Estimator, "estimator", c.Estimator, "zeroth-order estimator of the run (default: zopeer's, MeZO)")
	fs.Float64Var(&c.GradBound, "grad-bound", c.GradBound, "bound on every update's |projected gradient| (0: zopeer init calibrates it)")
	fs.Uint64Var(&c.MaxSamples, "max-samples", c.MaxSamples, "samples one machine may contribute at most (0: zopeer's default)")
	fs.Func("pool", "seed pool K of the run (FedKSeed, docs/PROTOCOL.md §12; 0: full mode)", func(v string) error {
		k, err := strconv.ParseUint(v, 10, 32)
		c.Pool = uint32(k)
		return err
	})
	fs.StringVar(&c.Admission, "admission", c.Admission, "open or closed (default: zopeer's, open); a closed run admits every testnet peer and the --admit machines")
	fs.IntVar(&c.PowBits, "pow-bits", c.PowBits, "open runs: proof of work every contributing key must carry, in bits")
	fs.StringVar(&c.Admit, "admit", c.Admit, "closed runs: machine ids admitted besides the testnet's peers (16 hex digits, comma-separated)")
	fs.BoolVar(&c.PublicData, "public-data", c.PublicData, "declare the training data public (docs/PROTOCOL.md §11): every peer trains on all of --data and re-verifies the others")
	fs.BoolVar(&c.Window, "window", c.Window, "peers split records longer than the context into windows")
	fs.IntVar(&c.Overlap, "window-overlap", c.Overlap, "with --window, tokens a window repeats from the one before")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: testnet [flags]\n\nRuns a local zopeer network and checks that every peer ends with the same weights,\n"+
			"that no update is lost and that the eval loss improved. Exit status 1 if a check fails.\n\n")
		fs.PrintDefaults()
	}
	return fs
}

// initArgs are the run parameters given to `zopeer init`; admit are the
// machine ids of the testnet's peers, for a closed run, and evalData the
// peers' held-out records.
func (c config) initArgs(admit []string, evalData string) []string {
	var a []string
	add := func(flag, v string, set bool) {
		if set {
			a = append(a, "--"+flag, v)
		}
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	add("run", c.Run, c.Run != "")
	add("dist", c.Dist, c.Dist != "")
	add("eps", f(c.Eps), c.Eps != 0)
	add("lr", f(c.LR), c.LR != 0)
	add("lr-warmup", strconv.FormatUint(c.LRWarmup, 10), c.LRWarmup != 0)
	add("lr-decay", strconv.FormatUint(c.LRDecay, 10), c.LRDecay != 0)
	add("trainable", c.Trainable, c.Trainable != "")
	add("estimator", c.Estimator, c.Estimator != "")
	add("grad-bound", f(c.GradBound), c.GradBound != 0)
	add("max-samples", strconv.FormatUint(c.MaxSamples, 10), c.MaxSamples != 0)
	add("pool", strconv.FormatUint(uint64(c.Pool), 10), c.Pool != 0)
	add("admission", c.Admission, c.Admission != "")
	add("pow-bits", strconv.Itoa(c.PowBits), true)
	if c.Admit != "" {
		admit = append(admit, strings.Split(c.Admit, ",")...)
	}
	add("admit", strings.Join(admit, ","), len(admit) > 0)
	if c.PublicData {
		// The manifest records the batch size and the digest of the training
		// records: all of the one shard, as the peers, given --eval-data, use.
		a = append(a, "--public-data", "--batch-size", strconv.Itoa(c.BatchSize), "--eval-data", evalData)
	}
	if c.Window { // calibration (grad bound, scale=grad) on the windows the peers train on
		a = append(a, "--window", "--window-overlap", strconv.Itoa(c.Overlap))
	}
	return a
}

// newNet writes the data into dir and creates the run with c's run
// parameters, no peer started yet. A closed run admits every peer the testnet
// will start (their identities are made first: the admission list is fixed at
// init) and the --admit machines. The caller closes the net it returns, also
// with an error.
func newNet(ctx context.Context, c config, dir, bin string) (*testnet.Net, error) {
	shards := c.Nodes + c.Late
	if c.PublicData { // public data: every peer trains on (and can re-verify) all of it
		shards = 1
	}
	data, err := testnet.WriteData(filepath.Join(dir, "data"), c.Model, c.Data, c.EvalData, shards)
	if err != nil {
		return nil, err
	}
	n := &testnet.Net{Bin: bin, Dir: dir, Data: data, Args: []string{
		"--steps", strconv.Itoa(c.Steps), "--samples", strconv.Itoa(c.Samples), "--batch-size", strconv.Itoa(c.BatchSize),
		"--eval-every", strconv.Itoa(c.EvalEvery), "--checkpoint-every", "20", "--state-every", "1s", "--sync-every", "1s",
		"--test-drop-gossip", strconv.FormatFloat(c.Drop, 'g', -1, 64)}}
	if c.Run != "" {
		n.Args = append(n.Args, "--run", c.Run) // joiners fetch the manifest of this run
	}
	if c.Window {
		n.Args = append(n.Args, "--window", "--window-overlap", strconv.Itoa(c.Overlap))
		data.Records = dataset.Options{Window: true, Overlap: c.Overlap}
	}
	var admit []string
	if c.Admission == "closed" {
		if admit, err = n.MintIdentities(ctx, cmp.Or(c.Run, node.Defaults.Run), 0, c.Nodes+c.Late, ""); err != nil {
			return n, err
		}
	}
	return n, n.Init(ctx, c.initArgs(admit, data.Eval)...)
}

// result is what a run leaves besides its report.
type result struct {
	testnet.Report
	History []testnet.Point
	Wall    time.Duration
}

func runOnce(ctx context.Context, c config, out io.Writer) (testnet.Report, error) {
	res, err := run(ctx, c, out)
	return res.Report, err
}

// run starts the net, drives its schedule while printing progress, checks
// it, and writes the chart.
func run(ctx context.Context, c config, out io.Writer) (result, error) {
	var res result
	if c.Nodes < 1 || c.Late < 0 || c.Steps < 1 || c.Churn < 0 || c.Drop < 0 || c.Drop >= 1 {
		return res, fmt.Errorf("need --nodes ≥ 1, --steps ≥ 1, --late and --churn ≥ 0, --drop in [0, 1)")
	}
	dir := c.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "zopeer-testnet-"); err != nil {
			return res, err
		}
	}
	bin := c.Zopeer
	if bin == "" {
		fmt.Fprintln(out, "building zopeer …")
		var err error
		if bin, err = testnet.Build(ctx, ".", dir, false); err != nil {
			return res, err
		}
	}
	n, err := newNet(ctx, c, dir, bin)
	if n != nil {
		defer n.Close()
	}
	if err != nil {
		return res, err
	}
	base, err := n.Data.BaseLoss(ctx, c.BatchSize)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "testnet in %s: %d peers + %d late joiners, %d steps × %d updates each, %d churn events, gossip loss %.0f%%; base eval loss %.4f\n",
		dir, c.Nodes, c.Late, c.Steps, c.Samples, c.Churn, 100*c.Drop, base)
	start := time.Now()
	var marks []testnet.Mark
	for range c.Nodes {
		nd, err := n.Add(ctx)
		if err != nil {
			return res, err
		}
		marks = append(marks, testnet.Mark{Elapsed: n.Elapsed(), Label: "start " + nd.Name})
	}
	connected(ctx, n, c.Nodes-1, out)

	// The progress printer exits when progressCtx ends, after the checks.
	progressCtx, stopProgress := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { progress(progressCtx, n, c.Every, out) })
	defer func() { stopProgress(); wg.Wait() }()

	events, err := testnet.Schedule{Churn: c.Churn, Late: c.Late, Steps: c.Steps, Samples: c.Samples, Seed: c.Seed}.Run(ctx, n, out)
	marks = append(marks, events...)
	if err != nil {
		return res, err
	}
	fmt.Fprintln(out, "waiting for the peers to finish their steps and agree …")
	r := n.Check(ctx, base)
	stopProgress()
	wg.Wait()
	res = result{Report: r, History: n.History(), Wall: time.Since(start)}
	fmt.Fprintf(out, "\nsummary after %v (B/update: bytes in + out over the updates in the peer's log; logs in %s)\n\n", res.Wall.Round(time.Second), dir)
	r.Write(out)
	if c.Chart == "" {
		c.Chart = filepath.Join(dir, "eval-loss.svg")
	}
	title := fmt.Sprintf("zopeer testnet: %d peers, %d late, %d churn events, %.0f%% gossip loss", c.Nodes, c.Late, c.Churn, 100*c.Drop)
	if err := writeChart(c.Chart, testnet.Chart{Title: title, Points: res.History, BaseLoss: base, Marks: marks}); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "chart: %s\n", c.Chart)
	return res, nil
}

func writeChart(path string, ch testnet.Chart) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := ch.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// connected reports when every peer is connected to want others; training
// does not wait for it (gossip and anti-entropy deliver what a late connection
// missed), and neither does this after 30 s.
func connected(ctx context.Context, n *testnet.Net, want int, out io.Writer) {
	start := n.Elapsed()
	for n.Elapsed()-start < 30*time.Second && ctx.Err() == nil {
		sts := n.Poll(ctx)
		ok := len(sts) == len(n.Nodes())
		for _, st := range sts {
			ok = ok && st.Peers >= want
		}
		if ok {
			fmt.Fprintf(out, "all %d peers connected to each other %.1f s after the first started (bootstrap addresses, loopback)\n", len(sts), n.Elapsed().Seconds())
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(out, "peers not all connected after 30 s; going on\n")
}

// progress prints one line per peer every interval until ctx ends.
func progress(ctx context.Context, n *testnet.Net, every time.Duration, out io.Writer) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sts := n.Poll(ctx)
		var b strings.Builder
		fmt.Fprintf(&b, "%6.1fs", n.Elapsed().Seconds())
		for _, nd := range n.Nodes() {
			st, ok := sts[nd]
			if !ok {
				fmt.Fprintf(&b, " | %s down", nd.Name)
				continue
			}
			eval := "-"
			if st.EvalLoss != nil {
				eval = fmt.Sprintf("%.3f", *st.EvalLoss)
			}
			state := ""
			if st.CatchingUp {
				state = " catching-up"
			}
			fmt.Fprintf(&b, " | %s %d upd (%d own) %d peers loss %s%s", nd.Name, st.Updates, st.OwnUpdates, st.Peers, eval, state)
		}
		fmt.Fprintln(out, b.String())
	}
}

// scaling runs the same per-peer budget with each network size and prints
// the eval loss reached and the updates each peer needed to reach the target.
func scaling(ctx context.Context, c config, out io.Writer) error {
	var sizes []int
	for _, s := range strings.Split(c.Scaling, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 {
			return fmt.Errorf("--scaling %q: want sizes ≥ 1", c.Scaling)
		}
		sizes = append(sizes, k)
	}
	root := c.Dir
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "zopeer-scaling-"); err != nil {
			return err
		}
	}
	if c.Zopeer == "" {
		var err error
		if c.Zopeer, err = testnet.Build(ctx, ".", root, false); err != nil {
			return err
		}
	}
	type row struct {
		n              int
		total          uint64
		final          float64
		hitOwn, hitAll uint64
		hit            bool
		wall           time.Duration
		base           float64
		ok             bool
	}
	var rows []row
	var curves []testnet.Point
	for _, k := range sizes {
		rc := c
		rc.Nodes, rc.Late, rc.Churn, rc.Dir, rc.Chart = k, 0, 0, filepath.Join(root, fmt.Sprintf("n%d", k)), ""
		fmt.Fprintf(out, "\n=== %d peers\n", k)
		res, err := run(ctx, rc, out)
		if err != nil {
			return err
		}
		rw := row{n: k, total: res.Union, wall: res.Wall, base: res.BaseLoss, ok: res.OK()}
		for _, r := range res.Rows {
			if r.Live {
				rw.final = r.EvalLoss
				break
			}
		}
		// The first measurement at or below the target, by any peer: its
		// weights included hitAll updates, hitAll/k per peer on average.
		for _, p := range res.History {
			if p.EvalLoss <= c.Target && (!rw.hit || p.Updates < rw.hitAll) {
				rw.hit, rw.hitAll = true, p.Updates
			}
		}
		rw.hitOwn = rw.hitAll / uint64(k)
		rows = append(rows, rw)
		// node0's curve, against the updates each peer contributed.
		for _, p := range res.History {
			if p.Node == "node0" {
				p.Node, p.Updates = fmt.Sprintf("%d peers", k), p.Updates/uint64(k)
				curves = append(curves, p)
			}
		}
	}
	fmt.Fprintf(out, "\nscaling: %d steps × %d updates per peer (batch %d); target eval loss %.2f\n\n", c.Steps, c.Samples, c.BatchSize, c.Target)
	fmt.Fprintln(out, "| peers | updates per peer | total updates | final eval loss | total updates at target | per peer (average) | wall | checks |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		hitAll, hitOwn := "not reached", "-"
		if r.hit {
			hitAll, hitOwn = fmt.Sprint(r.hitAll), fmt.Sprint(r.hitOwn)
		}
		verdict := "pass"
		if !r.ok {
			verdict = "FAIL"
		}
		fmt.Fprintf(out, "| %d | %d | %d | %.4f | %s | %s | %v | %s |\n", r.n, c.Steps*c.Samples, r.total, r.final, hitAll, hitOwn, r.wall.Round(time.Second), verdict)
	}
	chart := cmp.Or(c.Chart, filepath.Join(root, "scaling.svg"))
	title := fmt.Sprintf("zopeer scaling: %d steps × %d updates per peer", c.Steps, c.Samples)
	if err := writeChart(chart, testnet.Chart{Title: title, XLabel: "updates per peer (total / peers)", Points: curves, BaseLoss: rows[0].base}); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nchart: %s\n", chart)
	for _, r := range rows {
		if !r.ok {
			return errors.New("checks failed")
		}
	}
	return nil
}
