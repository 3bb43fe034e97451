package testnet

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/zopeer/zopeer/config"
	"github.com/zopeer/zopeer/node"
)

// The in-process mode reads the subset of `zopeer start` and `zopeer init`
// flags that the testnet passes, with the same names and defaults, so both
// modes run from the same arguments.

func initInProcess(home string, args []string) error {
	s := node.InitDefaults
	s.Home = home
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.Model, "model", s.Model, "")
	fs.StringVar(&s.Data, "data", s.Data, "")
	fs.StringVar(&s.Run, "run", s.Run, "")
	fs.Float64Var(&s.LR, "lr", s.LR, "")
	fs.IntVar(&s.PowBits, "pow-bits", s.PowBits, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := node.NewManifest(context.Background(), s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return node.WriteManifest(filepath.Join(home, node.ManifestFile), m)
}

// inProcess is a node.Start goroutine; ending it cancels its context.
type inProcess struct{ cancel context.CancelFunc }

func (p inProcess) end(bool) { p.cancel() }

func startInProcess(args []string, logf *os.File, done func(error)) (process, error) {
	s, ps := node.Defaults, node.PeerDefaults
	s.Steps = 0
	listen, boot := config.List(ps.Listen), config.List(nil)
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.Home, "home", s.Home, "")
	fs.StringVar(&s.Model, "model", s.Model, "")
	fs.StringVar(&s.Data, "data", s.Data, "")
	fs.StringVar(&s.EvalData, "eval-data", s.EvalData, "")
	fs.StringVar(&s.Run, "run", s.Run, "")
	fs.IntVar(&s.BatchSize, "batch-size", s.BatchSize, "")
	fs.IntVar(&s.Samples, "samples", s.Samples, "")
	fs.IntVar(&s.Steps, "steps", s.Steps, "")
	fs.IntVar(&s.EvalEvery, "eval-every", s.EvalEvery, "")
	fs.IntVar(&s.CkptEvery, "checkpoint-every", s.CkptEvery, "")
	fs.Var(&listen, "listen", "")
	fs.Var(&boot, "bootstrap", "")
	fs.StringVar(&ps.API, "api", ps.API, "")
	fs.BoolVar(&ps.MDNS, "mdns", ps.MDNS, "")
	fs.BoolVar(&ps.DHT, "dht", ps.DHT, "")
	fs.BoolVar(&ps.RelayClient, "relay", ps.RelayClient, "")
	fs.BoolVar(&ps.HolePunching, "hole-punching", ps.HolePunching, "")
	fs.Uint64Var(&ps.MaxLag, "max-lag", ps.MaxLag, "")
	fs.DurationVar(&ps.StateEvery, "state-every", ps.StateEvery, "")
	fs.DurationVar(&ps.SyncEvery, "sync-every", ps.SyncEvery, "")
	fs.Float64Var(&ps.DropGossip, "test-drop-gossip", ps.DropGossip, "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	ps.Listen, ps.Bootstrap = listen, boot
	s, err := s.WithEmbeddedDefault()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(logf, nil))
	// Exits when its context is cancelled (or the peer fails).
	go func() {
		err := node.Start(ctx, s, ps, log)
		cancel()
		done(err)
	}()
	return inProcess{cancel}, nil
}
