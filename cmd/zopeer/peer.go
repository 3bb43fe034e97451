package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/zopeer/zopeer/config"
	"github.com/zopeer/zopeer/node"
)

func initCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	s := node.InitDefaults
	runFlags(fs, &s)
	fs.StringVar(&s.Home, "home", s.Home, "the node's home directory; the manifest goes there")
	fs.StringVar(&s.Model, "model", s.Model, "base model directory (default: the embedded model)")
	fs.StringVar(&s.ModelName, "model-name", s.ModelName, "where joiners get --model, e.g. a Hugging Face repository id (recorded in the manifest)")
	fs.StringVar(&s.ModelRevision, "model-revision", s.ModelRevision, "revision of --model-name (recorded in the manifest)")
	fs.StringVar(&s.Data, "data", s.Data, "data to calibrate --grad-bound on (default with the embedded model: its task)")
	fs.StringVar(&s.EvalData, "eval-data", s.EvalData, "the peers' --eval-data: with --public-data, the public training records are then all of --data (default: --held-out of it is held out)")
	fs.Float64Var(&s.HeldOut, "held-out", s.HeldOut, "the peers' --held-out: fraction of --data held out when --eval-data is empty")
	fs.BoolVar(&s.Window, "window", s.Window, "calibrate on --data split into windows of the context (as peers that train with --window)")
	fs.IntVar(&s.Overlap, "window-overlap", s.Overlap, "with --window, tokens each window repeats from the one before")
	fs.Float64Var(&s.GradBound, "grad-bound", s.GradBound, "bound on every update's |projected gradient| (0: calibrate: a quarter of the base model's median |g| on --data, as a power of two)")
	fs.Uint64Var(&s.MaxSamples, "max-samples", s.MaxSamples, "samples one machine may contribute at most (0: no cap)")
	fs.StringVar(&s.Admission, "admission", s.Admission, "open (anyone with --pow-bits of proof of work) or closed (only --admit machines)")
	fs.IntVar(&s.PowBits, "pow-bits", s.PowBits, "open runs: proof of work every contributing key must carry, in bits")
	fs.IntVar(&s.BatchSize, "batch-size", s.BatchSize, "records per projected gradient (a --public-data run records it; others use each peer's own)")
	fs.BoolVar(&s.PublicData, "public-data", s.PublicData, "declare the training data public: peers re-verify each other's gradients and ban liars (docs/PROTOCOL.md §11)")
	admit := config.List(s.Admit)
	fs.Var(&admit, "admit", "closed runs: machine ids (16 hex digits, `zopeer id`) that may contribute, comma-separated")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", args)}
		}
		s.Admit = admit
		switch s.Admission {
		case "open":
			if len(s.Admit) > 0 {
				return usageError{errors.New("--admit is for closed runs (--admission closed)")}
			}
		case "closed":
			if len(s.Admit) == 0 {
				return usageError{errors.New("a closed run needs --admit with at least one machine id")}
			}
			s.PowBits = 0 // admission replaces the proof of work
		default:
			return usageError{fmt.Errorf("--admission %q: want open or closed", s.Admission)}
		}
		if s.PowBits < 0 || s.PowBits > 64 {
			return usageError{fmt.Errorf("--pow-bits %d: want 0..64", s.PowBits)}
		}
		if err := os.MkdirAll(s.Home, 0o755); err != nil {
			return err
		}
		path := filepath.Join(s.Home, node.ManifestFile)
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists: this home already belongs to a run", path)
		}
		m, err := node.NewManifest(ctx, s)
		if err != nil {
			return err
		}
		if err := node.WriteManifest(path, m); err != nil {
			return err
		}
		fmt.Fprintf(out, "run %q created in %s (base digest %x)\n", m.Run, path, m.BaseDigest)
		fmt.Fprintf(out, "admission %s, gradient bound %g, at most %d samples per machine", m.Admission, m.GradBound, m.MaxSamples)
		if m.Closed() {
			fmt.Fprintf(out, ", %d machines admitted\n", len(m.Admit))
		} else {
			fmt.Fprintf(out, ", proof of work %d bits\n", m.PowBits)
		}
		if m.Data != nil {
			fmt.Fprintf(out, "public data %x (batch size %d), verification tolerance %g\n", m.Data.Digest[:8], m.Data.BatchSize, m.Data.Tolerance)
		}
		if m.Pool > 0 {
			fmt.Fprintf(out, "seed pool of %d: every update perturbs along one of them (docs/PROTOCOL.md §12)\n", m.Pool)
			if m.PoolChoices > 0 {
				fmt.Fprintf(out, "FedKSeed-Pro: each update picks its pool seed among %d candidates (docs/PROTOCOL.md §12.1)\n", m.PoolChoices)
			}
		}
		return nil
	}
}

func idCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	home := fs.String("home", node.Defaults.Home, "the node's home directory")
	listen := config.List(node.PeerDefaults.Listen)
	fs.Var(&listen, "listen", "the --listen the peer is started with, for the addresses printed when it is not running")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", args)}
		}
		machine, id, err := node.Identity(*home)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "machine %016x\npeer    %s\n", machine, id)
		// The running peer's own addresses, else those --listen implies.
		var st node.Status
		addrs, from := shareableAddrs(listen, id), "--listen"
		if b, err := os.ReadFile(filepath.Join(*home, node.APIAddrFile)); err == nil {
			if _, err := getJSON(ctx, strings.TrimSpace(string(b)), "/api/status", &st); err == nil && st.PeerID == id && len(st.Addrs) > 0 {
				addrs, from = st.Addrs, "the running peer"
			}
		}
		fmt.Fprintf(out, "addresses to give to --bootstrap (from %s):\n", from)
		for _, a := range addrs {
			fmt.Fprintf(out, "  %s\n", a)
		}
		return nil
	}
}

func startCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	s := node.Defaults
	s.Steps = 0
	ps := node.PeerDefaults
	localFlags(fs, &s)
	fs.StringVar(&s.Run, "run", s.Run, "run to join when the home has no manifest (fetched from peers)")
	fs.IntVar(&s.Steps, "steps", s.Steps, "contribute this many steps, then keep serving without contributing (0: no limit; -1: serve only)")
	listen, boot := config.List(ps.Listen), config.List(ps.Bootstrap)
	fs.Var(&listen, "listen", "multiaddrs to listen on, comma-separated")
	fs.Var(&boot, "bootstrap", "multiaddrs of peers to dial (…/p2p/ID), comma-separated")
	fs.BoolVar(&ps.MDNS, "mdns", ps.MDNS, "discover peers on the LAN with mDNS")
	fs.BoolVar(&ps.DHT, "dht", ps.DHT, "discover peers through the Kademlia DHT")
	fs.BoolVar(&ps.DHTServer, "dht-server", ps.DHTServer, "force DHT server mode (for bootstrap nodes)")
	fs.BoolVar(&ps.RelayClient, "relay", ps.RelayClient, "reach peers behind NAT through relays")
	fs.BoolVar(&ps.HolePunching, "hole-punching", ps.HolePunching, "hole punching through relays")
	fs.BoolVar(&ps.NATService, "nat-service", ps.NATService, "answer AutoNAT dial-backs for other peers")
	fs.BoolVar(&ps.NATPortMap, "nat-portmap", ps.NATPortMap, "map a port with UPnP / NAT-PMP")
	fs.StringVar(&ps.API, "api", ps.API, "address of the HTTP API (keep it on loopback)")
	fs.Uint64Var(&ps.MaxLag, "max-lag", ps.MaxLag, "stop contributing while this many updates behind the best peer")
	fs.DurationVar(&ps.StateEvery, "state-every", ps.StateEvery, "between announcements of (set digest, weights hash)")
	fs.DurationVar(&ps.SyncEvery, "sync-every", ps.SyncEvery, "between anti-entropy rounds")
	fs.Float64Var(&ps.DropGossip, "test-drop-gossip", ps.DropGossip, "TEST ONLY: drop this fraction of inbound gossip")
	fs.BoolVar(&ps.TestLie, "test-lie", ps.TestLie, "TEST ONLY: flip the sign of every own gradient (a liar for the verification tests)")
	fs.BoolVar(&ps.TestAccuse, "test-accuse", ps.TestAccuse, "TEST ONLY: accuse every sample this peer re-computes, true or not (a false accuser)")
	fs.Float64Var(&ps.VerifyFraction, "verify-fraction", ps.VerifyFraction, "public-data runs: share of compute spent re-computing other machines' samples (0..1)")
	fs.IntVar(&ps.SnapshotQuorum, "snapshot-quorum", ps.SnapshotQuorum, "join with an empty log from a snapshot once this many machines attest its (set digest, weights hash) by announcing or serving it; 0: replay every update")
	fs.BoolVar(&ps.SnapshotVerify, "snapshot-verify", ps.SnapshotVerify, "after joining by snapshot, replay its updates in the background to check it (status snapshot.verify)")
	fs.BoolVar(&ps.SnapshotLie, "test-snapshot-lie", ps.SnapshotLie, "TEST ONLY: serve snapshots whose weights hash is wrong")
	fs.BoolVar(&ps.SnapshotCorrupt, "test-snapshot-corrupt", ps.SnapshotCorrupt, "TEST ONLY: serve the agreed snapshot's true hash with wrong bytes")
	fs.BoolVar(&ps.RelayService, "relay-service", ps.RelayService, "offer a bounded circuit relay to peers behind NAT, once AutoNAT finds this peer public")
	fs.IntVar(&ps.RelayMaxReservations, "relay-max-reservations", ps.RelayMaxReservations, "relay service: reservations held for other peers at most")
	fs.IntVar(&ps.RelayMaxCircuits, "relay-max-circuits", ps.RelayMaxCircuits, "relay service: relayed connections per peer at most")
	fs.IntVar(&ps.MeshDegree, "mesh-degree", ps.MeshDegree, "gossipsub mesh degree D: copies of each message a peer receives (bytes against resilience; large open runs may want 6)")
	relays := config.List(ps.StaticRelays)
	fs.Var(&relays, "static-relays", "relays to reserve a slot on (…/p2p/ID), comma-separated (default: relays among the peers this one knows)")
	fs.BoolVar(&ps.AutoNAT, "autonat-v2", ps.AutoNAT, "check this peer's own addresses with AutoNAT v2")
	fs.BoolVar(&ps.PeerExchange, "peer-exchange", ps.PeerExchange, "gossipsub peer exchange: hand pruned peers other peers' records")
	fs.DurationVar(&ps.JoinTimeout, "join-timeout", ps.JoinTimeout, "say so when no peer of the run is reachable within this (a joiner without a manifest stops)")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", args)}
		}
		if ps.DropGossip < 0 || ps.DropGossip >= 1 {
			return usageError{errors.New("--test-drop-gossip must be in [0, 1)")}
		}
		ps.Listen, ps.Bootstrap = listen, boot
		ps.StaticRelays = relays
		s, err := s.WithEmbeddedDefault()
		if err != nil {
			return usageError{err}
		}
		return node.Start(node.WithProgress(ctx, progressBar(stderrOf(ctx))), s, ps, log)
	}
}

func statusCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	addr := apiFlags(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", args)}
		}
		api, err := addr()
		if err != nil {
			return err
		}
		var st node.Status
		body, err := getJSON(ctx, api, "/api/status", &st)
		if err != nil {
			return err
		}
		if *asJSON {
			_, err := out.Write(body)
			return err
		}
		eval := "-"
		if st.EvalLoss != nil {
			eval = fmt.Sprintf("%.4f (at %d updates)", *st.EvalLoss, st.EvalUpdates)
		}
		fmt.Fprintf(out, "peer          %s\nrun           %s\nmachine       %s\nupdates       %d (own %d)\npeers         %d\n"+
			"set digest    %s\nweights hash  %s (at %d updates)\neval loss     %s\ncontributing  %v\ncatching up   %v\n",
			st.PeerID, st.Run, st.Machine, st.Updates, st.OwnUpdates, st.Peers, st.SetDigest, st.WeightsHash,
			st.HashUpdates, eval, st.Contributing, st.CatchingUp)
		printWatch(out, st)
		if len(st.Flagged) > 0 {
			fmt.Fprintf(out, "FLAGGED       %s (equivocating machines)\n", strings.Join(st.Flagged, ", "))
		}
		if len(st.Mismatches) > 0 {
			fmt.Fprintf(out, "MISMATCHES    %d peers reported another weights hash for our set digest\n", len(st.Mismatches))
		}
		return nil
	}
}

func benchCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	dir := fs.String("model", "gpt2-small", "model directory, or a built-in shape with random weights: gpt2-small, smollm-135m")
	n := fs.Int("tokens", 256, "tokens per forward pass")
	reps := fs.Int("reps", 3, "repetitions of each measurement")
	asJSON := fs.Bool("json", false, "print one JSON object")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 || *reps < 1 {
			return usageError{errors.New("usage: zopeer bench [--model DIR|gpt2-small|smollm-135m] [--tokens N] [--reps N]")}
		}
		log.Info("benchmarking", "model", *dir, "tokens", *n, "reps", *reps)
		r, err := node.Bench(ctx, *dir, *n, *reps)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(r)
		}
		fmt.Fprintf(out, "model %s: %d parameters, BLAS %s, %d threads\n", r.Model, r.Params, r.BLAS, r.Threads)
		fmt.Fprintf(out, "forward, %d tokens:   %.3f s  (%.0f tokens/s, %.1f GFLOP/s)\n", r.Tokens, r.ForwardSeconds, r.TokensPerSec, r.GFLOPs)
		fmt.Fprintf(out, "ZO step (2 forwards at θ±εz, the first applying 1 update): %.3f s  (%.2f forward passes); %d samples, the first applying %d updates: %.3f s each (%.2f)\n",
			r.StepSeconds, r.StepOverFwd, *reps, *reps, r.StepBatchedSeconds, r.StepBatchedOverFwd)
		fmt.Fprintf(out, "the same step with its update applied apart first: %.3f s  (%.2f forward passes)\n", r.StepSeparateSeconds, r.StepSeparateOverFwd)
		if r.ForwardCPUSeconds > 0 {
			fmt.Fprintf(out, "CPU time: forward %.3f s, ZO step %.3f s (%.2f), apart %.3f s (%.2f)\n", r.ForwardCPUSeconds,
				r.StepCPUSeconds, r.StepCPUSeconds/r.ForwardCPUSeconds, r.StepSeparateCPUSeconds, r.StepSeparateCPUSeconds/r.ForwardCPUSeconds)
		}
		fmt.Fprintf(out, "separate apply: %.3f ns/element (1 update), %.3f ns/element (16 updates)\n", r.Apply1NsElem, r.Apply16NsElem)
		fmt.Fprintf(out, "RSS: weights alone %.0f MiB (int32 weights %.0f MiB, the only copy), peak forward %.0f MiB, peak ZO step %.0f MiB\n",
			r.RSSWeightsMiB, r.WeightsMiB, r.PeakForwardMiB, r.PeakStepMiB)
		fmt.Fprintf(out, "forward working set (activations, weight buffers): %.1f MiB\n", r.WorkingSetMiB)
		return nil
	}
}
