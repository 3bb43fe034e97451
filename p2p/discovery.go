package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

const dialTimeout = 15 * time.Second

// aloneRetry is how often a peer with no connection retries its bootstrap
// and known peers, and the DHT rendezvous.
const aloneRetry = 5 * time.Second

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
	found := false // the rendezvous answered with peers of the run
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
			if ev.Connectedness != network.Connected || (found && time.Now().Before(readvertise)) {
				continue
			}
			// A new connection while the rendezvous has not worked yet:
			// give identify and the DHT a moment, then run a round.
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			t.Reset(time.Second)
			continue
		case <-t.C:
		}
		p.connectAll(life, boot)
		if len(p.host.Network().Peers()) == 0 || len(p.runPeers()) == 0 {
			p.connectAll(life, known)
		}
		if rd != nil && len(p.kdht.RoutingTable().ListPeers()) > 0 {
			if time.Now().After(readvertise) {
				ttl, err := rd.Advertise(life, ns)
				if err != nil {
					p.opts.Logger.Debug("p2p: dht advertise", "err", err)
				} else {
					readvertise = time.Now().Add(ttl * 7 / 10)
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
				found = found || len(ais) > 0
				p.connectAll(life, ais)
			}
		}
		next := p.opts.DiscoveryInterval
		if len(p.runPeers()) == 0 {
			next = min(next, aloneRetry)
		}
		t.Reset(next)
	}
}
