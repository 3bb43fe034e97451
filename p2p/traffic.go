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
	total += varintLen(uint64(total))
	parts := 0
	for _, m := range rpc.Publish {
		s := fieldLen(m.Size())
		part := gpOther
		for i, t := range g.topics {
			if m.GetTopic() == t {
				part = i
			}
		}
		g.add(dir, part, s, 1)
		parts += s
	}
	for _, s := range rpc.Subscriptions {
		n := fieldLen(s.Size())
		g.add(dir, gpSubs, n, 1)
		parts += n
	}
	if c := rpc.Control; c != nil {
		ctl := 0
		for _, x := range c.Ihave {
			n := fieldLen(x.Size())
			g.add(dir, gpIHave, n, len(x.MessageIDs))
			ctl += n
		}
		for _, x := range c.Iwant {
			n := fieldLen(x.Size())
			g.add(dir, gpIWant, n, len(x.MessageIDs))
			ctl += n
		}
		for _, x := range c.Idontwant {
			n := fieldLen(x.Size())
			g.add(dir, gpIDontWant, n, len(x.MessageIDs))
			ctl += n
		}
		for _, x := range c.Graft {
			n := fieldLen(x.Size())
			g.add(dir, gpGraft, n, 1)
			ctl += n
		}
		for _, x := range c.Prune {
			n := fieldLen(x.Size())
			g.add(dir, gpPrune, n, 1)
			ctl += n
		}
		parts += ctl
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

// fieldLen is the encoded length of an embedded protobuf field of n bytes
// (a one-byte tag, the length varint, the bytes).
func fieldLen(n int) int { return 1 + varintLen(uint64(n)) + n }

func varintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
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
