package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// NAT traversal. Every peer runs the AutoNAT service (v1 dial-backs and v2
// per-address checks) for others, and learns its own reachability from them.
// A peer that is not known to be public asks AutoRelay for reservations on
// relays found among the peers it knows (bootstrap, DHT, connected, known
// peers persisted by the caller); a peer that AutoNAT finds public offers a
// bounded relay service. A connection that comes through a relay is upgraded
// to a direct one by DCUtR hole punching when the NATs allow it.

// RunProtocolPrefix starts the protocol ID a peer registers to say which run
// it serves ("/zopeer/run/<run>/1"). Identify lists it, so a joiner dialling a
// peer of another run can say so at once instead of timing out.
const RunProtocolPrefix = "/zopeer/run/"

func runProtocol(run string) protocol.ID { return protocol.ID(RunProtocolPrefix + run + "/1") }

// natOptions are the host options for reachability and relays.
func (p *Peer) natOptions(boot []peer.AddrInfo) ([]libp2p.Option, error) {
	o := &p.opts
	var lopts []libp2p.Option
	lopts = append(lopts, libp2p.AddrsFactory(usefulAddrs))
	if !o.RelayClient {
		lopts = append(lopts, libp2p.DisableRelay())
	} else {
		ar := []autorelay.Option{
			autorelay.WithBootDelay(0),
			autorelay.WithMinCandidates(1),
			autorelay.WithNumRelays(max(1, o.RelayReservations)),
			autorelay.WithMinInterval(5 * time.Second),
			autorelay.WithBackoff(30 * time.Second),
		}
		if len(o.StaticRelays) > 0 {
			relays, err := parseAddrs(o.StaticRelays)
			if err != nil {
				return nil, err
			}
			ar = append(ar, autorelay.WithStaticRelays(relays))
		} else {
			ar = append(ar, autorelay.WithPeerSource(p.relayCandidates(boot)))
		}
		lopts = append(lopts, libp2p.EnableAutoRelay(ar...))
	}
	if o.RelayService {
		rc := relayv2.DefaultResources()
		rc.MaxReservations, rc.MaxCircuits = o.RelayMaxReservations, o.RelayMaxCircuits
		// Gossip and sync run over relayed connections until hole punching
		// replaces them, and libp2p opens no stream on a "limited"
		// connection: the service is bounded by reservations and circuits,
		// not per connection.
		rc.Limit = nil
		lopts = append(lopts, libp2p.EnableRelayService(relayv2.WithResources(rc)))
	}
	if o.AutoNATv2 {
		lopts = append(lopts, libp2p.EnableAutoNATv2())
	}
	if o.HolePunching {
		lopts = append(lopts, libp2p.EnableHolePunching(holepunch.WithTracer(&p.punch)))
	}
	if o.NATService {
		lopts = append(lopts, libp2p.EnableNATService())
	}
	if o.NATPortMap {
		lopts = append(lopts, libp2p.NATPortMap())
	}
	return lopts, nil
}

// usefulAddrs drops loopback addresses when the host has any other: a remote
// peer that dials 127.0.0.1 reaches itself. Identify already sends each
// remote only the addresses of its own scope; this covers the signed peer
// record, peer exchange and what the caller persists.
func usefulAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := ma.FilterAddrs(addrs, func(a ma.Multiaddr) bool { return !manet.IsIPLoopback(a) })
	if len(out) == 0 {
		return addrs
	}
	return out
}

// dhtAddrs is what the DHT stores and hands out, for us and for others:
// public addresses (relay circuits included) when there are any, else the
// non-loopback ones, else loopback (a testnet on one machine).
func dhtAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	if pub := ma.FilterAddrs(addrs, manet.IsPublicAddr); len(pub) > 0 {
		return pub
	}
	return usefulAddrs(addrs)
}

// relayCandidates feeds AutoRelay: the bootstrap peers, the connected peers,
// the DHT's routing table and the known peers, in that order. AutoRelay keeps
// those that speak the relay protocol (only public peers offer it).
func (p *Peer) relayCandidates(boot []peer.AddrInfo) autorelay.PeerSource {
	return func(ctx context.Context, num int) <-chan peer.AddrInfo {
		out := make(chan peer.AddrInfo, num)
		defer close(out)
		if p.host == nil {
			return out
		}
		seen := map[peer.ID]bool{p.host.ID(): true}
		add := func(ai peer.AddrInfo) bool {
			if len(out) >= num {
				return false
			}
			if seen[ai.ID] {
				return true
			}
			seen[ai.ID] = true
			if len(ai.Addrs) == 0 {
				ai.Addrs = p.host.Peerstore().Addrs(ai.ID)
			}
			if len(ai.Addrs) > 0 {
				out <- ai
			}
			return true
		}
		for _, ai := range boot {
			if !add(ai) {
				return out
			}
		}
		for _, id := range p.host.Network().Peers() {
			if !add(peer.AddrInfo{ID: id}) {
				return out
			}
		}
		if p.kdht != nil {
			for _, id := range p.kdht.RoutingTable().ListPeers() {
				if !add(peer.AddrInfo{ID: id}) {
					return out
				}
			}
		}
		for _, ai := range p.remembered() {
			if !add(ai) {
				return out
			}
		}
		if known, err := parseAddrs(p.opts.KnownPeers); err == nil {
			for _, ai := range known {
				if !add(ai) {
					return out
				}
			}
		}
		return out
	}
}

// CheckListen binds every listen address with a fixed port once, without
// SO_REUSEPORT, and releases it. libp2p binds its ports with SO_REUSEPORT
// (which hole punching needs: dials leave from the listening port), so a
// second daemon on the same port would start silently and share the
// traffic; this turns that into an error before anything else starts.
func CheckListen(addrs []string) error {
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("p2p: listen address %q: %w", s, err)
		}
		network, hostport, err := listenTarget(m)
		if err != nil {
			return fmt.Errorf("p2p: listen address %s: %w", s, err)
		}
		if network == "" {
			continue // port 0, or a transport we do not probe
		}
		var c interface{ Close() error }
		if strings.HasPrefix(network, "tcp") {
			c, err = net.Listen(network, hostport)
		} else {
			c, err = net.ListenPacket(network, hostport)
		}
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("p2p: listen %s: %s port %s is already in use (another zopeer daemon, or another program): choose another with --listen",
					s, strings.ToUpper(network[:3]), hostport[strings.LastIndex(hostport, ":")+1:])
			}
			return fmt.Errorf("p2p: listen %s: %w", s, err)
		}
		c.Close()
	}
	return nil
}

// listenTarget returns the Go network and host:port to probe for a listen
// multiaddr, or "" when there is nothing to probe.
func listenTarget(m ma.Multiaddr) (string, string, error) {
	var ip, tcp, udp string
	var ipv6 bool
	ma.ForEach(m, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_IP4:
			ip = c.Value()
		case ma.P_IP6:
			ip, ipv6 = c.Value(), true
		case ma.P_TCP:
			tcp = c.Value()
		case ma.P_UDP:
			udp = c.Value()
		}
		return true
	})
	if ip == "" {
		return "", "", nil
	}
	suffix := "4"
	if ipv6 {
		suffix = "6"
	}
	switch {
	case tcp != "" && tcp != "0":
		return "tcp" + suffix, net.JoinHostPort(ip, tcp), nil
	case udp != "" && udp != "0":
		return "udp" + suffix, net.JoinHostPort(ip, udp), nil
	}
	return "", "", nil
}

// reach follows what AutoNAT says about this host.
type reach struct {
	mu          sync.Mutex
	status      network.Reachability
	reachable   []ma.Multiaddr // AutoNAT v2: addresses confirmed reachable
	unreachable []ma.Multiaddr
}

// watchReachability records the host's reachability events; exits when life ends.
func (p *Peer) watchReachability(life context.Context) {
	sub, err := p.host.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtHostReachableAddrsChanged)})
	if err != nil {
		p.opts.Logger.Warn("p2p: reachability events", "err", err)
		return
	}
	defer sub.Close()
	for {
		select {
		case <-life.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			p.reach.mu.Lock()
			switch ev := e.(type) {
			case event.EvtLocalReachabilityChanged:
				p.reach.status = ev.Reachability
				p.opts.Logger.Info("p2p: reachability", "reachability", reachName(ev.Reachability))
			case event.EvtHostReachableAddrsChanged:
				p.reach.reachable, p.reach.unreachable = ev.Reachable, ev.Unreachable
			}
			p.reach.mu.Unlock()
		}
	}
}

func reachName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// Conn is one connection to a peer, as the status shows it.
type Conn struct {
	Peer    string `json:"peer"`
	Addr    string `json:"addr"`              // the remote multiaddr
	Relayed bool   `json:"relayed"`           // through a circuit relay (else direct)
	Limited bool   `json:"limited,omitempty"` // a relay's limited connection: no gossip on it
	Run     string `json:"run,omitempty"`     // the run the peer serves, once identified
	Dir     string `json:"direction"`         // inbound or outbound
}

// NetInfo is what the peer knows of its own reachability.
type NetInfo struct {
	// Reachability is AutoNAT's verdict: public, private (behind a NAT or
	// firewall: reachable through relays) or unknown (not yet tested).
	Reachability string `json:"reachability"`
	// PublicAddrs are this peer's public addresses; those AutoNAT v2
	// confirmed reachable are listed in ReachableAddrs.
	PublicAddrs    []string `json:"public_addrs"`
	ReachableAddrs []string `json:"reachable_addrs"`
	// RelayAddrs are the addresses through relays this peer holds a
	// reservation on; Relays the relays' peer IDs.
	RelayAddrs []string `json:"relay_addrs"`
	Relays     []string `json:"relay_reservations"`
	// RelayService says whether this peer offers the relay service (only
	// once AutoNAT finds it public).
	RelayService bool `json:"relay_service"`
	// HolePunch counts DCUtR hole punches (relayed connections upgraded to
	// direct ones, or not).
	HolePunch HolePunch `json:"hole_punch"`
	Direct    int       `json:"direct_peers"`
	Relayed   int       `json:"relayed_peers"`
	Conns     []Conn    `json:"connections"`
}

// maxConnsShown bounds the connections NetInfo lists.
const maxConnsShown = 256

// NetInfo returns the peer's reachability, addresses, relay reservations
// and, per connection, whether it is direct or relayed.
func (p *Peer) NetInfo() NetInfo {
	p.reach.mu.Lock()
	ni := NetInfo{Reachability: reachName(p.reach.status)}
	for _, a := range p.reach.reachable {
		ni.ReachableAddrs = append(ni.ReachableAddrs, a.String())
	}
	p.reach.mu.Unlock()
	ni.RelayService = p.opts.RelayService && ni.Reachability == "public"
	ni.HolePunch = p.punch.get()
	relays := map[string]bool{}
	for _, a := range p.host.Addrs() {
		if isRelayed(a) {
			ni.RelayAddrs = append(ni.RelayAddrs, a.String())
			if id, err := peer.IDFromP2PAddr(a); err == nil {
				relays[id.String()] = true
			} else if r := relayOf(a); r != "" {
				relays[r] = true
			}
			continue
		}
		if manet.IsPublicAddr(a) {
			ni.PublicAddrs = append(ni.PublicAddrs, a.String())
		}
	}
	for r := range relays {
		ni.Relays = append(ni.Relays, r)
	}
	sort.Strings(ni.Relays)
	direct := map[peer.ID]bool{}
	relayed := map[peer.ID]bool{}
	for _, c := range p.host.Network().Conns() {
		id := c.RemotePeer()
		st := c.Stat()
		rel := isRelayed(c.RemoteMultiaddr())
		if rel {
			relayed[id] = true
		} else {
			direct[id] = true
		}
		if len(ni.Conns) < maxConnsShown {
			dir := "outbound"
			if st.Direction == network.DirInbound {
				dir = "inbound"
			}
			run := ""
			if runs := p.RunsOf(id); len(runs) > 0 {
				run = runs[0]
			}
			ni.Conns = append(ni.Conns, Conn{Peer: id.String(), Addr: c.RemoteMultiaddr().String(), Relayed: rel,
				Limited: st.Limited, Run: run, Dir: dir})
		}
	}
	for id := range relayed {
		if !direct[id] {
			ni.Relayed++
		}
	}
	ni.Direct = len(direct)
	sort.Slice(ni.Conns, func(i, j int) bool { return ni.Conns[i].Peer < ni.Conns[j].Peer })
	return ni
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// relayOf returns the relay's peer ID in a circuit address (…/p2p/R/p2p-circuit).
func relayOf(a ma.Multiaddr) string {
	var last string
	var out string
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_P2P:
			last = c.Value()
		case ma.P_CIRCUIT:
			out = last
			return false
		}
		return true
	})
	return out
}

// RunsOf returns the runs a connected peer says it serves (identify's
// protocol list), empty until identify completes or for a non-zopeer peer.
func (p *Peer) RunsOf(id peer.ID) []string {
	protos, err := p.host.Peerstore().GetProtocols(id)
	if err != nil {
		return nil
	}
	var runs []string
	for _, pr := range protos {
		s := string(pr)
		if strings.HasPrefix(s, RunProtocolPrefix) && strings.HasSuffix(s, "/1") {
			runs = append(runs, strings.TrimSuffix(strings.TrimPrefix(s, RunProtocolPrefix), "/1"))
		}
	}
	sort.Strings(runs)
	return runs
}

// KnownPeers returns the peers of this run connected now, directly, as
// multiaddrs with /p2p/ID (their dialable, non-loopback addresses): the
// caller persists them and passes them back as Options.KnownPeers.
func (p *Peer) KnownPeers(max int) []string {
	var out []string
	for _, id := range p.updates.ListPeers() {
		if len(out) >= max {
			break
		}
		addrs := dhtAddrs(p.host.Peerstore().Addrs(id))
		ai := peer.AddrInfo{ID: id}
		for _, a := range addrs {
			if !isRelayed(a) || len(ai.Addrs) < 4 {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		if len(ai.Addrs) == 0 {
			continue
		}
		mas, err := peer.AddrInfoToP2pAddrs(&ai)
		if err != nil {
			continue
		}
		for _, m := range mas {
			out = append(out, m.String())
		}
	}
	return out
}
