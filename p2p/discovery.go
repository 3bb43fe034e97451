package p2p

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

const dialTimeout = 15 * time.Second

// mdnsNotifee dials peers mDNS finds on the LAN.
type mdnsNotifee struct{ p *Peer }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	p := n.p
	if ai.ID == p.host.ID() {
		return
	}
	// mDNS calls us from its own loop: dial elsewhere.
	p.spawn(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		defer cancel()
		if err := p.host.Connect(ctx, ai); err != nil {
			p.opts.Logger.Debug("p2p: mdns dial", "peer", ai.ID, "err", err)
		}
	})
}

// connectAll dials the peers not yet connected, in parallel, and waits.
func (p *Peer) connectAll(ctx context.Context, ais []peer.AddrInfo) {
	var wg sync.WaitGroup
	for _, ai := range ais {
		if ai.ID == p.host.ID() || p.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
			defer cancel()
			err := p.host.Connect(ctx, ai)
			p.noteDial(ai.ID, err)
			if err != nil {
				p.opts.Logger.Debug("p2p: dial", "peer", ai.ID, "err", err)
			}
		}()
	}
	wg.Wait()
}

// discoveryLoop keeps bootstrap and known peers dialled and, with the DHT,
// advertises this peer under the run's rendezvous and dials the peers found
// there. A round runs at start, right after the first connection (and after
// any connection made while the rendezvous had not yet succeeded), every
// DiscoveryInterval, and every aloneRetry while the peer has no connection.
// It exits when life ends.
func (p *Peer) discoveryLoop(life context.Context, boot []peer.AddrInfo) {
	var rd *drouting.RoutingDiscovery
	if p.kdht != nil {
		rd = drouting.NewRoutingDiscovery(p.kdht)
	}
	known, _ := parseAddrs(p.opts.KnownPeers)
	sub, err := p.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		p.opts.Logger.Warn("p2p: connectedness events", "err", err)
		return
	}
	defer sub.Close()
	ns := "zopeer/" + p.opts.Run + "/rendezvous/1"
	var readvertise time.Time
	var advertised string   // our addresses when we last advertised
	refreshed := time.Now() // New's dht Bootstrap has just refreshed
	// wait paces rounds: it starts at fastDiscovery, doubles while rounds
	// find no new peer of the run, up to DiscoveryInterval, or
	// settledDiscovery times it once the peer has settledPeers peers of the
	// run (each round's DHT lookup costs every peer queried a request), and
	// starts over when the peer loses its last peer of the run.
	wait := fastDiscovery
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-life.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			if ev.Connectedness == network.Connected && wait <= 2*fastDiscovery {
				// Early on, a new connection: give identify and the DHT a
				// moment, then run a round.
				resetTimer(t, time.Second)
			}
			continue
		case <-t.C:
		}
		before := len(p.runPeers())
		p.connectAll(life, boot)
		if before < 2 {
			p.connectAll(life, known)
			p.connectAll(life, p.remembered())
		}
		if rd != nil && time.Since(refreshed) >= dhtRefresh {
			p.kdht.RefreshRoutingTable() // in the background; the result is not needed
			refreshed = time.Now()
		}
		if rd != nil && len(p.kdht.RoutingTable().ListPeers()) > 0 {
			// Advertise again when our addresses changed (a NATed peer's relay
			// addresses arrive later than its first round): DHT servers hand
			// out the addresses they know with the record.
			if addrs := addrsKey(p.host.Addrs()); time.Now().After(readvertise) || addrs != advertised {
				ttl, err := rd.Advertise(life, ns)
				if err != nil {
					p.opts.Logger.Debug("p2p: dht advertise", "err", err)
				} else {
					readvertise, advertised = time.Now().Add(ttl*7/10), addrs
					p.opts.Logger.Debug("p2p: dht advertised", "addrs", addrs)
				}
			}
			ch, err := rd.FindPeers(life, ns)
			if err != nil {
				p.opts.Logger.Debug("p2p: dht find peers", "err", err)
			} else {
				var ais []peer.AddrInfo
				for ai := range ch {
					if len(ai.Addrs) > 0 && ai.ID != p.host.ID() {
						ais = append(ais, ai)
					}
				}
				p.opts.Logger.Debug("p2p: dht found peers", "n", len(ais))
				p.connectAll(life, ais)
			}
		}
		switch after := len(p.runPeers()); {
		case after == 0:
			wait = fastDiscovery
		case after > before:
			wait = fastDiscovery
		case after >= settledPeers:
			wait = min(2*wait, settledDiscovery*p.opts.DiscoveryInterval)
		default:
			wait = min(2*wait, p.opts.DiscoveryInterval)
		}
		t.Reset(wait)
	}
}

// Paces of discovery rounds (see discoveryLoop).
const (
	fastDiscovery    = 2 * time.Second
	settledPeers     = 2
	settledDiscovery = 8
	// dhtRefresh paces routing-table refreshes (libp2p's default period).
	dhtRefresh = 10 * time.Minute
)

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// remember notes a peer that joined the run's topic, to redial it when the
// peer has lost its peers.
func (p *Peer) remember(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.met) < maxRemembered {
		p.met[id] = true
	}
}

// maxRemembered bounds the peers remembered.
const maxRemembered = 1024

// remembered returns the remembered peers not connected now, with the
// addresses the peerstore still holds.
func (p *Peer) remembered() []peer.AddrInfo {
	p.mu.Lock()
	ids := make([]peer.ID, 0, len(p.met))
	for id := range p.met {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	var out []peer.AddrInfo
	for _, id := range ids {
		if p.host.Network().Connectedness(id) == network.Connected {
			continue
		}
		if addrs := p.host.Peerstore().Addrs(id); len(addrs) > 0 {
			out = append(out, peer.AddrInfo{ID: id, Addrs: addrs})
		}
	}
	return out
}

// addrsKey is a set of addresses as one comparable string.
func addrsKey(addrs []ma.Multiaddr) string {
	ss := make([]string, len(addrs))
	for i, a := range addrs {
		ss[i] = a.String()
	}
	slices.Sort(ss)
	return strings.Join(ss, " ")
}
