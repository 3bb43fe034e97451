package p2p

import (
	"crypto/ed25519"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerInfo is what the host knows of one connected peer (for status and the
// dashboard; nothing decides on it).
type PeerInfo struct {
	ID      string        `json:"peer_id"`
	Machine uint64        `json:"-"`        // from its key (MachineOf); 0 if the key is not Ed25519
	Addrs   []string      `json:"addrs"`    // remote multiaddrs of its open connections
	Relayed bool          `json:"relayed"`  // every connection goes through a relay (/p2p-circuit)
	Inbound bool          `json:"inbound"`  // its first connection was dialled by the peer
	Since   time.Time     `json:"since"`    // the oldest open connection was opened
	Latency time.Duration `json:"-"`        // moving average round trip, 0 if not measured
	OnTopic bool          `json:"on_topic"` // subscribed to the run's updates topic
	Streams int           `json:"streams"`  // open streams
}

// PeerInfos lists the connected peers, by peer ID.
func (p *Peer) PeerInfos() []PeerInfo {
	onTopic := map[peer.ID]bool{}
	for _, id := range p.updates.ListPeers() {
		onTopic[id] = true
	}
	net := p.host.Network()
	var out []PeerInfo
	for _, id := range net.Peers() {
		pi := PeerInfo{ID: id.String(), OnTopic: onTopic[id], Relayed: true,
			Latency: p.host.Peerstore().LatencyEWMA(id)}
		pi.Machine, _ = MachineOfPeer(id)
		conns := net.ConnsToPeer(id)
		for i, c := range conns {
			a := c.RemoteMultiaddr().String()
			pi.Addrs = append(pi.Addrs, a)
			if !strings.Contains(a, "/p2p-circuit") {
				pi.Relayed = false
			}
			st := c.Stat()
			if i == 0 || st.Opened.Before(pi.Since) {
				pi.Since, pi.Inbound = st.Opened, st.Direction == network.DirInbound
			}
			pi.Streams += len(c.GetStreams())
		}
		if len(conns) == 0 {
			pi.Relayed = false
		}
		slices.Sort(pi.Addrs)
		out = append(out, pi)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// MachineOfPeer is the machine id bound to a peer's identity key (MachineOf),
// and false if the peer ID does not embed an Ed25519 key.
func MachineOfPeer(id peer.ID) (uint64, bool) {
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return 0, false
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return 0, false
	}
	return MachineOf(ed25519.PublicKey(raw)), true
}
