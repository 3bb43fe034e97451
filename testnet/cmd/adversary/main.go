// Command adversary attacks a zopeer run on loopback, for the adversarial
// tests of the testnet (testnet/adversarial_test.go, docs/TESTNET.md). It is
// a test tool, not part of zopeer: it joins a run given bootstrap addresses
// and the run's manifest (or fetches the manifest from the peers), and
// behaves as one of these modes:
//
//	ascent      one identity that tracks the run like a peer (catches up,
//	            applies every peer's updates) and publishes, at the honest
//	            cadence, batches whose codes carry the sign of its honest
//	            projected gradient flipped, at the largest admissible
//	            magnitude (|ĝ| = the manifest's grad_bound): gradient ascent.
//	sybil       --n identities in one process and one libp2p host, each
//	            minted to the manifest's pow_bits, publishing ascent batches
//	            (--sign random: max-magnitude batches of random sign).
//	flood       one identity publishing valid admissible batches as fast as
//	            it can for --duration.
//	equivocate  one identity that signs two different batches for the same
//	            samples and publishes them at the same moment through two
//	            libp2p hosts, bootstrapped to --bootstrap and --bootstrap2.
//	lie         signed state announcements claiming 2^62 updates.
//	mint        only mint --n identities into --keys (reports the time).
//
// It prints progress on stderr and, at the end (after --duration, SIGINT or
// SIGTERM), one line "SUMMARY {json}" on stdout saying what it published and
// what minting its identities cost.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/node"
	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

type config struct {
	Mode       string
	N          int
	Bootstrap  string
	Bootstrap2 string
	Manifest   string
	Run        string
	Home       string
	Keys       string
	Duration   time.Duration
	Samples    int
	BatchSize  int
	PowBits    int
	GradBound  float64
	Sign       string
	Interval   time.Duration
	Workers    int
	Pre        int
	Lies       int
	Model      string
	Data       string
	EvalData   string
	Verbose    bool
}

// Summary is what the adversary did; printed as JSON after "SUMMARY ".
type Summary struct {
	Mode        string   `json:"mode"`
	Run         string   `json:"run"`
	Identities  int      `json:"identities"`
	Machines    []string `json:"machines"`
	PowBits     int      `json:"pow_bits"`
	Minted      int      `json:"minted"`       // identities minted by this process (others were loaded from --keys)
	MintSeconds float64  `json:"mint_seconds"` // total time spent minting them
	MintPerID   float64  `json:"mint_seconds_per_identity"`
	MintTries   uint64   `json:"mint_tries"`
	GradBound   float64  `json:"grad_bound"`        // |ĝ| the ascent batches carry
	BoundFrom   string   `json:"grad_bound_source"` // manifest, flag, or honest (max |g| of each batch: the manifest has no bound)
	Batches     uint64   `json:"batches"`           // batches published
	Updates     uint64   `json:"updates"`           // updates in them
	PublishErrs uint64   `json:"publish_errors"`
	Applied     uint64   `json:"applied"`     // peers' updates the tracking replica applied
	MeanAbsG    float64  `json:"mean_abs_g"`  // mean honest |g| the adversary measured (ascent, sybil)
	Equivocated []string `json:"equivocated"` // "machine/sample" pairs signed twice
	Announced   int      `json:"announced"`   // lying announcements
	Seconds     float64  `json:"seconds"`     // from joining to the end
	Rate        float64  `json:"batches_per_second"`
}

func main() {
	c := config{Mode: "ascent", N: 20, Duration: 0, Samples: 16, BatchSize: 4, PowBits: -1, Sign: "flip", Workers: 2, Pre: 4, Lies: 3}
	fs := flag.NewFlagSet("adversary", flag.ExitOnError)
	fs.StringVar(&c.Mode, "mode", c.Mode, "ascent, sybil, flood, equivocate, lie or mint")
	fs.IntVar(&c.N, "n", c.N, "sybil and mint: identities")
	fs.StringVar(&c.Bootstrap, "bootstrap", c.Bootstrap, "multiaddrs (…/p2p/ID) of peers to dial, comma-separated")
	fs.StringVar(&c.Bootstrap2, "bootstrap2", c.Bootstrap2, "equivocate: the second host's peers (different honest peers than --bootstrap)")
	fs.StringVar(&c.Manifest, "manifest", c.Manifest, "the run's manifest.json (default: fetch it from the peers)")
	fs.StringVar(&c.Run, "run", "zopeer-default", "run to join when fetching the manifest")
	fs.StringVar(&c.Home, "home", c.Home, "working directory for the tracking replica's log and the default model (default: a temporary directory)")
	fs.StringVar(&c.Keys, "keys", c.Keys, "directory of identities id-<i>.key: loaded when they carry enough proof of work, else minted and saved there")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "attack for this long, then exit (0: until SIGINT/SIGTERM; flood: 1m)")
	fs.IntVar(&c.Samples, "samples", c.Samples, "updates per batch (honest peers' --samples)")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "records per projected gradient (honest peers' --batch-size)")
	fs.IntVar(&c.PowBits, "pow-bits", c.PowBits, "proof of work of minted identities (-1: the manifest's pow_bits)")
	fs.Float64Var(&c.GradBound, "grad-bound", c.GradBound, "|ĝ| of attacking updates (0: the manifest's grad_bound; without one, each batch's honest max |g|)")
	fs.StringVar(&c.Sign, "sign", c.Sign, "sybil: flip (gradient ascent, one gradient per identity and batch) or random (max magnitude, random signs, no gradient)")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "sybil --sign random: between rounds of batches (0: one honest step's time)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "flood: publishing goroutines; mint: minting goroutines")
	fs.IntVar(&c.Pre, "pre", c.Pre, "equivocate: valid batches published before the equivocation (all excluded with it)")
	fs.IntVar(&c.Lies, "lies", c.Lies, "lie: announcements, one a second")
	fs.StringVar(&c.Model, "model", c.Model, "base model directory (default: the embedded model)")
	fs.StringVar(&c.Data, "data", c.Data, "training data (default: the embedded task)")
	fs.StringVar(&c.EvalData, "eval-data", c.EvalData, "held-out data")
	fs.BoolVar(&c.Verbose, "v", c.Verbose, "debug logging")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "adversary: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	level := slog.LevelInfo
	if c.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, c, log)
	b, _ := json.Marshal(sum)
	fmt.Printf("SUMMARY %s\n", b)
	fmt.Fprintf(os.Stderr, "adversary %s: %d identities (%d minted at %d bits in %.1fs, %.2fs each); published %d batches, %d updates in %.1fs (%.1f batches/s); %d publish errors; applied %d peer updates; %d lies; equivocated %v\n",
		sum.Mode, sum.Identities, sum.Minted, sum.PowBits, sum.MintSeconds, sum.MintPerID, sum.Batches, sum.Updates, sum.Seconds, sum.Rate,
		sum.PublishErrs, sum.Applied, sum.Announced, sum.Equivocated)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adversary:", err)
		os.Exit(1)
	}
}

// adversary is the state every mode shares.
type adversary struct {
	c    config
	log  *slog.Logger
	m    store.Manifest
	tag  p2p.RunTag
	keys []crypto.PrivKey
	sum  *Summary

	batches, updates, pubErrs atomic.Uint64
}

func run(ctx context.Context, c config, log *slog.Logger) (*Summary, error) {
	sum := &Summary{Mode: c.Mode}
	switch c.Mode {
	case "ascent", "sybil", "flood", "equivocate", "lie", "mint":
	default:
		return sum, fmt.Errorf("unknown --mode %q", c.Mode)
	}
	if c.Samples < 1 || c.Samples > p2p.MaxBatchCount || c.BatchSize < 1 || c.N < 1 {
		return sum, errors.New("--samples, --batch-size and --n must be positive")
	}
	if c.Home == "" {
		dir, err := os.MkdirTemp("", "zopeer-adversary-")
		if err != nil {
			return sum, err
		}
		defer os.RemoveAll(dir)
		c.Home = dir
	}
	a := &adversary{c: c, log: log, sum: sum}
	var err error
	if a.m, err = a.manifest(ctx); err != nil {
		return sum, err
	}
	a.tag = p2p.NewRunTag(a.m.Run)
	sum.Run = a.m.Run
	sum.PowBits = a.m.PowBits
	if c.PowBits >= 0 {
		sum.PowBits = c.PowBits
	}
	n := 1
	if c.Mode == "sybil" || c.Mode == "mint" {
		n = c.N
	}
	if err := a.identities(ctx, n); err != nil {
		return sum, err
	}
	start := time.Now()
	defer func() {
		sum.Seconds = time.Since(start).Seconds()
		sum.Batches, sum.Updates, sum.PublishErrs = a.batches.Load(), a.updates.Load(), a.pubErrs.Load()
		if sum.Seconds > 0 {
			sum.Rate = float64(sum.Batches) / sum.Seconds
		}
	}()
	if c.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Duration)
		defer cancel()
	} else if c.Mode == "flood" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	switch c.Mode {
	case "mint":
		return sum, nil
	case "ascent", "sybil":
		err = a.ascent(ctx)
	case "flood":
		err = a.flood(ctx)
	case "equivocate":
		err = a.equivocate(ctx)
	case "lie":
		err = a.lie(ctx)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil // the attack ran its time, or was told to stop
	}
	return sum, err
}

// manifest reads --manifest or fetches the run's manifest from the peers.
func (a *adversary) manifest(ctx context.Context) (store.Manifest, error) {
	if a.c.Manifest != "" {
		return node.ReadManifest(a.c.Manifest)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return store.Manifest{}, err
	}
	p, err := a.newPeer(ctx, key, node.EmptyLog(), a.c.Bootstrap)
	if err != nil {
		return store.Manifest{}, err
	}
	defer p.Close()
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := p.FetchManifest(fctx)
	if err != nil {
		return store.Manifest{}, err
	}
	var m store.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest from peers: %w", err)
	}
	return m, nil
}

// identities loads or mints n identities with the proof of work the summary says.
func (a *adversary) identities(ctx context.Context, n int) error {
	bits := a.sum.PowBits
	var mintTime time.Duration
	for i := range n {
		path := ""
		if a.c.Keys != "" {
			if err := os.MkdirAll(a.c.Keys, 0o755); err != nil {
				return err
			}
			path = filepath.Join(a.c.Keys, fmt.Sprintf("id-%d.key", i))
			if b, err := os.ReadFile(path); err == nil {
				if key, err := crypto.UnmarshalPrivateKey(b); err == nil {
					if got, err := p2p.KeyPowBits(a.m.Run, key.GetPublic()); err == nil && got >= bits {
						a.keys = append(a.keys, key)
						continue
					}
				}
			}
		}
		key, st, err := p2p.MintIdentity(ctx, a.m.Run, bits, a.c.Workers)
		if err != nil {
			return err
		}
		mintTime += st.Elapsed
		a.sum.Minted++
		a.sum.MintTries += st.Tries
		a.log.Info("minted identity", "i", i, "bits", bits, "tries", st.Tries, "elapsed", st.Elapsed.Round(time.Millisecond))
		if path != "" {
			if err := p2p.SaveIdentity(path, key); err != nil {
				return err
			}
		}
		a.keys = append(a.keys, key)
	}
	a.sum.MintSeconds = mintTime.Seconds()
	if a.sum.Minted > 0 {
		a.sum.MintPerID = a.sum.MintSeconds / float64(a.sum.Minted)
	}
	a.sum.Identities = len(a.keys)
	for _, k := range a.keys {
		a.sum.Machines = append(a.sum.Machines, fmt.Sprintf("%016x", machineOf(k)))
	}
	return nil
}

func machineOf(k crypto.PrivKey) uint64 {
	raw, _ := k.GetPublic().Raw()
	return p2p.MachineOf(ed25519.PublicKey(raw))
}

// newPeer starts a libp2p host in the run, on loopback, dialling boot.
func (a *adversary) newPeer(ctx context.Context, key crypto.PrivKey, l p2p.Log, boot string) (*p2p.Peer, error) {
	o := p2p.DefaultOptions()
	o.Run, o.Key, o.Log = a.runName(), key, l
	o.Logger = a.log.With("component", "p2p")
	o.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	o.Bootstrap = splitList(boot)
	o.MDNS, o.DHT, o.RelayClient, o.HolePunching = false, false, false, false
	o.SyncInterval = time.Second
	return p2p.New(ctx, o)
}

func (a *adversary) runName() string {
	if a.m.Run != "" {
		return a.m.Run
	}
	return a.c.Run
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// waitMesh waits until p has a gossip mesh peer on the updates topic (and
// gives the states topic, joined at the same time, a moment more).
func waitMesh(ctx context.Context, p *p2p.Peer) error {
	deadline := time.Now().Add(30 * time.Second)
	for p.Stats().MeshPeers == 0 {
		if time.Now().After(deadline) {
			return errors.New("no gossip mesh peer after 30s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	return nil
}

func (a *adversary) publish(ctx context.Context, p *p2p.Peer, b *p2p.Batch) {
	if err := p.Publish(ctx, b); err != nil {
		if ctx.Err() == nil {
			a.pubErrs.Add(1)
			a.log.Warn("publish", "err", err)
		}
		return
	}
	a.batches.Add(1)
	a.updates.Add(uint64(len(b.Codes)))
}

// ascent tracks the run with a replica of its own (log, engine, trainer) and
// publishes, for each identity in turn, the next batch of its samples coded
// with the honest gradient's sign flipped at magnitude G.
func (a *adversary) ascent(ctx context.Context) error {
	s := node.Defaults
	s.Home, s.Model, s.Data, s.EvalData = a.c.Home, a.c.Model, a.c.Data, a.c.EvalData
	s, err := s.WithEmbeddedDefault()
	if err != nil {
		return err
	}
	s.BatchSize, s.Samples, s.Machine = a.c.BatchSize, a.c.Samples, machineOf(a.keys[0])
	s = s.ApplyManifest(a.m)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if a.c.Verbose {
		quiet = a.log
	}
	r, err := node.OpenRun(ctx, s, &a.m, quiet)
	if err != nil {
		return err
	}
	defer r.Close()
	p, err := a.newPeer(ctx, a.keys[0], node.LogOf(r.Log), a.c.Bootstrap)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := waitMesh(ctx, p); err != nil {
		return err
	}
	var applyWarned bool
	apply := func(raw []byte, us []zo.Update) {
		if _, err := r.Trainer.Apply(ctx, raw, us); err != nil && !applyWarned && ctx.Err() == nil {
			applyWarned = true
			a.log.Warn("tracking replica refused updates (published anyway)", "err", err)
		}
	}
	drain := func() {
		for {
			select {
			case b := <-p.Batches():
				before := r.Log.Stats().Updates
				apply(b.Raw, b.Updates())
				a.sum.Applied += r.Log.Stats().Updates - before
			default:
				return
			}
		}
	}
	// Catch up before attacking, as a peer would; while the peers train, a
	// round always fetches something, so a round that fetches little (or 10 s
	// of rounds) is caught up: gossip brings the rest.
	for deadline := time.Now().Add(10 * time.Second); ctx.Err() == nil && time.Now().Before(deadline); {
		got := p.SyncNow(ctx)
		drain()
		if got <= uint64(16*a.c.Samples) {
			break
		}
	}
	a.log.Info("tracking the run", "updates", r.Log.Stats().Updates, "identities", len(a.keys))

	bound, from := a.c.GradBound, "flag"
	if bound == 0 {
		bound, from = a.m.GradBound, "manifest"
	}
	if bound == 0 {
		from = "honest"
	}
	a.sum.BoundFrom = from
	a.sum.GradBound = bound
	next := make([]uint64, len(a.keys))
	for i, k := range a.keys {
		if held := r.Log.Held(machineOf(k)); len(held) > 0 {
			next[i] = held[len(held)-1].Last + 1
		}
	}
	random := a.c.Mode == "sybil" && a.c.Sign == "random"
	interval := a.c.Interval
	var sumAbs float64
	var nAbs int
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
	for round := 0; ctx.Err() == nil; round++ {
		roundStart := time.Now()
		for i, k := range a.keys {
			drain()
			mach := machineOf(k)
			var g, u []float64
			G := bound
			if !random || round == 0 && i == 0 {
				gr, err := r.Trainer.GradientsOf(ctx, mach, next[i], a.c.Samples)
				if err != nil {
					return err
				}
				g, u = gr.G, gr.U
				var mx float64
				for _, v := range g {
					sumAbs += math.Abs(v)
					nAbs++
					mx = max(mx, math.Abs(v))
				}
				if G == 0 {
					G = mx // no bound: the honest magnitude, saturated
				}
				if random && interval == 0 {
					interval = time.Since(roundStart)
				}
			}
			if random {
				g, u = make([]float64, a.c.Samples), make([]float64, a.c.Samples)
				for j := range g {
					g[j] = float64(1 - 2*rng.IntN(2)) // sign(g) random: the flip below keeps it random
				}
				if G == 0 {
					G = 1
				}
			}
			flipped := make([]float64, len(g))
			for j, v := range g {
				switch {
				case v > 0:
					flipped[j] = -G
				case v < 0:
					flipped[j] = G
				}
			}
			codes := make([]int8, len(g))
			exp, err := zo.QuantizeBounded(flipped, u, codes, G)
			if err != nil {
				return err
			}
			b, err := p2p.SignBatch(k, a.tag, next[i], exp, codes)
			if err != nil {
				return err
			}
			next[i] += uint64(len(codes))
			apply(b.Raw, b.Updates())
			a.publish(ctx, p, b)
			if ctx.Err() != nil {
				break
			}
		}
		if nAbs > 0 {
			a.sum.MeanAbsG = sumAbs / float64(nAbs)
		}
		if round%10 == 0 {
			a.log.Info("attacking", "round", round, "published", a.batches.Load(), "updates", r.Log.Stats().Updates, "G", bound, "mean_abs_g", a.sum.MeanAbsG)
		}
		if random {
			select {
			case <-ctx.Done():
			case <-time.After(interval - time.Since(roundStart)):
			}
		}
	}
	return ctx.Err()
}

// smallCodes are valid codes of no consequence: exponent 0 decodes to
// |ĝ| ≤ 127·2^-128, admissible under any bound.
func smallCodes(rng *rand.Rand, n int) []int8 {
	c := make([]int8, n)
	for i := range c {
		c[i] = int8(rng.IntN(255) - 127)
	}
	return c
}

// codesAt codes n projected gradients of random sign and magnitude in
// [mag/2, mag] (within the run's bound G when it has one): updates that move
// the weights, so that an equivocation's two halves give different weights.
func codesAt(rng *rand.Rand, n int, mag, bound float64) (uint8, []int8, error) {
	g, u := make([]float64, n), make([]float64, n)
	for i := range g {
		g[i] = mag * (0.5 + rng.Float64()/2) * float64(1-2*rng.IntN(2))
		u[i] = rng.Float64()
	}
	codes := make([]int8, n)
	exp, err := zo.QuantizeBounded(g, u, codes, bound)
	return exp, codes, err
}

// flood publishes valid, admissible batches of one identity, consecutive
// samples, from --workers goroutines, as fast as they go.
func (a *adversary) flood(ctx context.Context) error {
	p, err := a.newPeer(ctx, a.keys[0], node.EmptyLog(), a.c.Bootstrap)
	if err != nil {
		return err
	}
	defer p.Close()
	go discard(p)
	if err := waitMesh(ctx, p); err != nil {
		return err
	}
	var next atomic.Uint64
	var wg sync.WaitGroup
	for w := range max(1, a.c.Workers) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(w)))
			for ctx.Err() == nil {
				first := next.Add(uint64(a.c.Samples)) - uint64(a.c.Samples)
				b, err := p2p.SignBatch(a.keys[0], a.tag, first, 0, smallCodes(rng, a.c.Samples))
				if err != nil {
					a.log.Error("sign", "err", err)
					return
				}
				a.publish(ctx, p, b)
			}
		})
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-tick.C:
			a.log.Info("flooding", "published", a.batches.Load(), "stats", p.Stats())
		}
	}
}

func discard(p *p2p.Peer) {
	go func() {
		for range p.States() {
		}
	}()
	for range p.Batches() {
	}
}

// equivocate publishes --pre valid batches, then two different batches for
// the same samples at the same moment through two hosts with different peers.
func (a *adversary) equivocate(ctx context.Context) error {
	if a.c.Bootstrap2 == "" {
		return errors.New("equivocate needs --bootstrap2: the second host's (other) honest peers")
	}
	key2, _, err := crypto.GenerateEd25519Key(nil) // the second relaying host's own identity
	if err != nil {
		return err
	}
	var ps [2]*p2p.Peer
	for i, boot := range []string{a.c.Bootstrap, a.c.Bootstrap2} {
		k := a.keys[0]
		if i == 1 {
			k = key2
		}
		if ps[i], err = a.newPeer(ctx, k, node.EmptyLog(), boot); err != nil {
			return err
		}
		defer ps[i].Close()
		go discard(ps[i])
	}
	for _, p := range ps {
		if err := waitMesh(ctx, p); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
	first := uint64(0)
	mag := a.c.GradBound
	if mag == 0 {
		mag = a.m.GradBound
	}
	if mag == 0 {
		mag = 1 // no bound: about an honest projected gradient of the default task
	}
	for range a.c.Pre {
		exp, codes, err := codesAt(rng, a.c.Samples, mag, a.m.GradBound)
		if err != nil {
			return err
		}
		b, err := p2p.SignBatch(a.keys[0], a.tag, first, exp, codes)
		if err != nil {
			return err
		}
		a.publish(ctx, ps[0], b)
		first += uint64(a.c.Samples)
	}
	// Let the valid batches spread first: the equivocation should split a
	// run that agreed on everything else.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second):
	}
	// Two halves with the same exponent and opposite codes: their weights
	// differ wherever the samples' perturbations reach.
	exp, codes, err := codesAt(rng, a.c.Samples, mag, a.m.GradBound)
	if err != nil {
		return err
	}
	other := make([]int8, len(codes))
	for i, c := range codes {
		other[i] = -c
	}
	if other[0] == codes[0] { // both 0
		other[0] = 1
	}
	var bs [2]*p2p.Batch
	for i, cs := range [][]int8{codes, other} {
		if bs[i], err = p2p.SignBatch(a.keys[0], a.tag, first, exp, cs); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range bs {
		wg.Go(func() {
			<-gate
			a.publish(ctx, ps[i], bs[i])
		})
	}
	close(gate)
	wg.Wait()
	a.sum.Equivocated = append(a.sum.Equivocated, fmt.Sprintf("%016x/%d", machineOf(a.keys[0]), first))
	a.log.Info("equivocated", "machine", a.sum.Machines[0], "sample", first)
	if a.c.Duration == 0 {
		// Stay a moment so both halves leave, then exit.
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// lie announces --lies signed states claiming 2^62 updates, one a second,
// with a random digest and hash, then stays until --duration ends.
func (a *adversary) lie(ctx context.Context) error {
	p, err := a.newPeer(ctx, a.keys[0], node.EmptyLog(), a.c.Bootstrap)
	if err != nil {
		return err
	}
	defer p.Close()
	go discard(p)
	if err := waitMesh(ctx, p); err != nil {
		return err
	}
	for i := range a.c.Lies {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
		var s p2p.State
		s.Time, s.Count = uint64(time.Now().UnixMilli()), 1<<62
		for j := range s.Digest {
			s.Digest[j] = byte(rand.Uint32())
		}
		for j := range s.WeightsHash {
			s.WeightsHash[j] = byte(rand.Uint32())
		}
		if err := p.Announce(ctx, s); err != nil {
			return err
		}
		a.sum.Announced++
	}
	a.log.Info("lied", "announcements", a.sum.Announced)
	if a.c.Duration == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
		}
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}
