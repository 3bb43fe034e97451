package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
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
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			if err := p.host.Connect(ctx, ai); err != nil {
				p.opts.Logger.Warn("p2p: dial", "peer", ai.ID, "err", err)
			}
		}()
	}
	wg.Wait()
}

// discoveryLoop keeps bootstrap peers dialled and, with the DHT, advertises
// this peer under the run's rendezvous and dials the peers found there.
// It exits when life ends.
func (p *Peer) discoveryLoop(life context.Context, boot []peer.AddrInfo) {
	var rd *drouting.RoutingDiscovery
	if p.kdht != nil {
		rd = drouting.NewRoutingDiscovery(p.kdht)
	}
	ns := "zopeer/" + p.opts.Run + "/rendezvous/1"
	var readvertise time.Time
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-life.Done():
			return
		case <-t.C:
		}
		p.connectAll(life, boot)
		if rd != nil && len(p.kdht.RoutingTable().ListPeers()) > 0 {
			if time.Now().After(readvertise) {
				ttl, err := rd.Advertise(life, ns)
				if err != nil {
					p.opts.Logger.Debug("p2p: dht advertise", "err", err)
				} else {
					readvertise = time.Now().Add(ttl * 7 / 10)
				}
			}
			found, err := rd.FindPeers(life, ns)
			if err != nil {
				p.opts.Logger.Debug("p2p: dht find peers", "err", err)
			} else {
				var ais []peer.AddrInfo
				for ai := range found {
					if len(ai.Addrs) > 0 {
						ais = append(ais, ai)
					}
				}
				p.connectAll(life, ais)
			}
		}
		t.Reset(p.opts.DiscoveryInterval)
	}
}
