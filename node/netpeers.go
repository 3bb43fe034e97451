package node

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zopeer/zopeer/p2p"
)

// apply copies the NAT and discovery settings into p2p options.
func (ps PeerSettings) apply(o *p2p.Options) {
	o.RelayClient, o.HolePunching, o.NATService, o.NATPortMap = ps.RelayClient, ps.HolePunching, ps.NATService, ps.NATPortMap
	o.RelayService, o.RelayMaxReservations, o.RelayMaxCircuits = ps.RelayService, ps.RelayMaxReservations, ps.RelayMaxCircuits
	o.StaticRelays, o.AutoNATv2, o.PeerExchange, o.MeshDegree = ps.StaticRelays, ps.AutoNAT, ps.PeerExchange, ps.MeshDegree
	if !o.RelayService {
		o.RelayMaxReservations, o.RelayMaxCircuits = max(1, o.RelayMaxReservations), max(1, o.RelayMaxCircuits)
	}
}

// maxKnownPeers bounds the addresses kept in PeersFile.
const maxKnownPeers = 64

// knownPeersEvery is how often PeersFile is rewritten while peers are connected.
const knownPeersEvery = 30 * time.Second

// readKnownPeers reads PeersFile; a missing or bad file is no known peer.
func readKnownPeers(home string, log *slog.Logger) []string {
	f, err := os.Open(filepath.Join(home, PeersFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < maxKnownPeers {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := peer.AddrInfoFromString(line); err != nil {
			log.Warn("ignoring a bad line of "+PeersFile, "line", line, "err", err)
			continue
		}
		out = append(out, line)
	}
	if len(out) > 0 {
		log.Info("redialling peers met before", "addresses", len(out))
	}
	return out
}

// writeKnownPeers replaces PeersFile with addrs (atomically); nothing is
// written when there are none, so a peer that ran alone keeps the list.
func writeKnownPeers(home string, addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	path := filepath.Join(home, PeersFile)
	tmp := path + ".tmp"
	body := "# peers of the run met before, redialled at start (written by zopeer)\n" + strings.Join(addrs, "\n") + "\n"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// keepKnownPeers persists the run's connected peers every knownPeersEvery
// and once more when ctx ends.
func (d *Daemon) keepKnownPeers(ctx context.Context, pr *p2p.Peer) {
	t := time.NewTicker(knownPeersEvery)
	defer t.Stop()
	save := func() {
		if err := writeKnownPeers(d.s.Home, pr.KnownPeers(maxKnownPeers)); err != nil {
			d.log.Warn("saving known peers", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-t.C:
			save()
		}
	}
}

// watchJoin reports, within JoinTimeout, a peer that finds no peer of its
// run: a bootstrap peer of another run ends the daemon (fail), no reachable
// peer is a warning while it runs alone and discovery keeps retrying.
func (d *Daemon) watchJoin(ctx context.Context, pr *p2p.Peer, fail context.CancelCauseFunc) {
	if len(d.ps.Bootstrap) == 0 && len(pr.KnownPeers(1)) == 0 && !d.ps.DHT && !d.ps.MDNS {
		return
	}
	err := pr.AwaitRunPeer(ctx, d.ps.JoinTimeout)
	switch {
	case err == nil || ctx.Err() != nil:
		return
	case p2p.IsWrongRun(err):
		fail(err)
		return
	}
	if len(d.ps.Bootstrap) == 0 && len(d.readKnown()) == 0 {
		return // the first peer of a run: alone by design
	}
	msg := err.Error() + "; running alone, retrying in the background"
	d.log.Warn(msg)
	d.snapshot(func(st *Status) { st.NetworkWarning = msg })
	// Clear the warning once a peer of the run shows up.
	if pr.AwaitRunPeer(ctx, 365*24*time.Hour) == nil {
		d.log.Info("found a peer of the run")
		d.snapshot(func(st *Status) { st.NetworkWarning = "" })
	}
}

func (d *Daemon) readKnown() []string {
	return readKnownPeers(d.s.Home, slog.New(slog.DiscardHandler))
}
