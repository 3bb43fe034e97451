// Command p2pnode is a zopeer network peer without a model, for network
// tests (testnet/netns): it runs p2p.Peer over an in-memory log, publishes
// synthetic signed batches at a chosen cadence, and writes its status as JSON
// to a file twice a second (a file, because it runs in another network
// namespace than the test).
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/zopeer/zopeer/config"
	"github.com/zopeer/zopeer/p2p"
)

// Status is what the status file holds.
type Status struct {
	ID        string      `json:"id"`
	Addrs     []string    `json:"addrs"`
	Updates   uint64      `json:"updates"`
	Published uint64      `json:"published_batches"`
	Digest    string      `json:"digest"`
	RunPeers  int         `json:"run_peers"`
	Net       p2p.NetInfo `json:"net"`
	Stats     p2p.Stats   `json:"stats"`
	Traffic   p2p.Traffic `json:"traffic"`
	Time      string      `json:"time"`
}

func main() {
	o := p2p.DefaultOptions()
	var listen, boot config.List
	key := flag.String("key", "", "identity file (created if missing)")
	statusPath := flag.String("status", "", "status file")
	run := flag.String("run", "netns", "run")
	every := flag.Duration("publish-every", time.Second, "between published batches")
	size := flag.Int("batch", 16, "updates per batch")
	count := flag.Int("batches", 0, "batches to publish (0: none)")
	startAt := flag.Duration("publish-after", 0, "wait this long before publishing")
	flag.Var(&listen, "listen", "listen multiaddrs")
	flag.Var(&boot, "bootstrap", "bootstrap multiaddrs")
	flag.BoolVar(&o.DHTServer, "dht-server", false, "DHT server mode")
	flag.BoolVar(&o.RelayService, "relay-service", o.RelayService, "relay service")
	flag.BoolVar(&o.MDNS, "mdns", false, "mDNS")
	flag.DurationVar(&o.StateInterval, "state-every", 30*time.Second, "state announcements (zopeer's default)")
	flag.DurationVar(&o.SyncInterval, "sync-every", 5*time.Second, "anti-entropy (zopeer's default)")
	flag.DurationVar(&o.DiscoveryInterval, "discovery-every", o.DiscoveryInterval, "discovery")
	flag.IntVar(&o.MeshDegree, "mesh-degree", o.MeshDegree, "gossipsub D")
	debug := flag.Bool("debug", os.Getenv("ZOPEER_P2PNODE_DEBUG") != "", "debug logs (env ZOPEER_P2PNODE_DEBUG)")
	flag.Parse()
	if len(listen) > 0 {
		o.ListenAddrs = listen
	}
	o.Bootstrap = boot
	o.Run = *run
	o.PeerExchange = true
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	o.Logger = log
	k, err := p2p.LoadIdentity(*key)
	if err != nil {
		fail(err)
	}
	o.Key = k
	ml := p2p.NewMemLog()
	o.Log = ml
	o.State = func() (p2p.State, bool) {
		n, d := uint64(ml.Count()), ml.Digest()
		return p2p.State{Count: n, Digest: d}, true
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	pr, err := p2p.New(ctx, o)
	if err != nil {
		fail(err)
	}
	defer pr.Close()
	go func() {
		for b := range pr.Batches() {
			ml.Store(b)
		}
	}()
	go func() {
		for range pr.States() {
		}
	}()
	var published uint64
	var pmu sync.Mutex
	if *count > 0 {
		go func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(*startAt):
			}
			t := time.NewTicker(*every)
			defer t.Stop()
			codes := make([]int8, *size)
			for i := 0; i < *count; i++ {
				for j := range codes {
					codes[j] = int8((i*31+j*7)%200 - 100)
				}
				b, err := pr.NewBatch(uint64(i**size), 0, codes)
				if err != nil {
					fail(err)
				}
				ml.Store(b)
				if err := pr.Publish(ctx, b); err != nil && ctx.Err() == nil {
					log.Warn("publish", "err", err)
				}
				pmu.Lock()
				published++
				pmu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		n, d := uint64(ml.Count()), ml.Digest()
		pmu.Lock()
		st := Status{ID: pr.ID().String(), Addrs: pr.Addrs(), Updates: n, Published: published, Digest: hex.EncodeToString(d[:]),
			Net: pr.NetInfo(), Stats: pr.Stats(), Traffic: pr.Traffic(), Time: time.Now().Format(time.RFC3339Nano)}
		pmu.Unlock()
		for _, c := range st.Net.Conns {
			if c.Run == o.Run {
				st.RunPeers++
			}
		}
		if *statusPath != "" {
			b, _ := json.Marshal(st)
			os.WriteFile(*statusPath+".tmp", b, 0o644)
			os.Rename(*statusPath+".tmp", *statusPath)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "p2pnode:", err)
	os.Exit(1)
}
