package p2p

import (
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Traffic says where a peer's bytes go, at two levels above the link:
// Streams is libp2p's stream payload per protocol (above yamux/QUIC and the
// security layer: TCP/IP, UDP, Noise, yamux and QUIC framing and ACKs are
// not in it), Gossip splits the gossipsub protocol's share into its parts as
// protobuf bytes (before the length prefix and stream framing). Link-level
// bytes are only visible to the host (interface counters); docs/BENCHMARKS.md
// measures them.
type Traffic struct {
	Streams map[string]Flow `json:"streams"`
	Gossip  map[string]Flow `json:"gossip"`
}

// Flow is bytes (and, for gossip parts, items: messages, message IDs,
// topics) in each direction.
type Flow struct {
	In       int64  `json:"in"`
	Out      int64  `json:"out"`
	ItemsIn  uint64 `json:"items_in,omitempty"`
	ItemsOut uint64 `json:"items_out,omitempty"`
}

// Gossip parts counted by gossipBytes.
const (
	gpUpdates  = iota // messages on the updates topic
	gpState           // messages on the state topic
	gpEvidence        // messages on the evidence topic
	gpOther           // messages on any other topic
	gpIHave
	gpIWant
	gpIDontWant
	gpGraft
	gpPrune
	gpSubs    // subscription changes
	gpFraming // RPC envelope: tags, lengths, the RPC's length prefix
	gpParts
)

var gossipPartNames = [gpParts]string{"msg_updates", "msg_state", "msg_evidence", "msg_other",
	"ihave", "iwant", "idontwant", "graft", "prune", "subscriptions", "framing"}

// gossipBytes counts gossip RPC bytes by part and direction; pubsub's event
// loop calls it, so it only adds to atomics.
type gossipBytes struct {
	topics [3]string // updates, state, evidence
	// b[dir][part], n[dir][part]; dir 0 in, 1 out
	b [2][gpParts]atomic.Int64
	n [2][gpParts]atomic.Uint64
}

func (g *gossipBytes) add(dir, part, bytes int, items int) {
	g.b[dir][part].Add(int64(bytes))
	g.n[dir][part].Add(uint64(items))
}

// count splits one RPC. Each part is charged its encoded size with its own
// field tag and length; what is left of the whole (the envelope, the length
// prefix) is framing.
func (g *gossipBytes) count(dir int, rpc *pubsub.RPC) {
	total := rpc.Size()
	total += uvarintLen(uint64(total))
	parts := 0
	charge := func(part, size, items int) {
		n := 1 + uvarintLen(uint64(size)) + size // tag, length, bytes
		g.add(dir, part, n, items)
		parts += n
	}
	for _, m := range rpc.Publish {
		part := gpOther
		for i, t := range g.topics {
			if m.GetTopic() == t {
				part = i
			}
		}
		charge(part, m.Size(), 1)
	}
	for _, s := range rpc.Subscriptions {
		charge(gpSubs, s.Size(), 1)
	}
	if c := rpc.Control; c != nil {
		for _, x := range c.Ihave {
			charge(gpIHave, x.Size(), len(x.MessageIDs))
		}
		for _, x := range c.Iwant {
			charge(gpIWant, x.Size(), len(x.MessageIDs))
		}
		for _, x := range c.Idontwant {
			charge(gpIDontWant, x.Size(), len(x.MessageIDs))
		}
		for _, x := range c.Graft {
			charge(gpGraft, x.Size(), 1)
		}
		for _, x := range c.Prune {
			charge(gpPrune, x.Size(), 1)
		}
	}
	g.add(dir, gpFraming, total-parts, 0)
}

func (g *gossipBytes) snapshot() map[string]Flow {
	out := make(map[string]Flow, gpParts)
	for i, name := range gossipPartNames {
		f := Flow{In: g.b[0][i].Load(), Out: g.b[1][i].Load(), ItemsIn: g.n[0][i].Load(), ItemsOut: g.n[1][i].Load()}
		if f != (Flow{}) {
			out[name] = f
		}
	}
	return out
}

// Traffic returns the byte breakdown since the peer started.
func (p *Peer) Traffic() Traffic {
	streams := map[string]Flow{}
	for proto, s := range p.bw.GetBandwidthByProtocol() {
		name := string(proto)
		if name == "" {
			name = "(negotiation)" // multistream-select, before a protocol is agreed
		}
		streams[name] = Flow{In: s.TotalIn, Out: s.TotalOut}
	}
	return Traffic{Streams: streams, Gossip: p.tr.gossip.snapshot()}
}
