package p2p

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// tracer counts what gossipsub drops, rejects and de-duplicates, and follows
// the updates topic's mesh. Pubsub calls it from its event loop, so it only
// touches atomics and one short-held lock.
type tracer struct {
	c      *counters
	topic  string
	gossip gossipBytes
	mu     sync.Mutex
	mesh   map[peer.ID]struct{}
}

var _ pubsub.RawTracer = (*tracer)(nil)

func newTracer(c *counters, updates, state, evidence string) *tracer {
	return &tracer{c: c, topic: updates, gossip: gossipBytes{topics: [3]string{updates, state, evidence}}, mesh: map[peer.ID]struct{}{}}
}

// meshSize is the number of peers in our mesh of the updates topic: gossip
// published while it is 0 reaches nobody (flood publishing is off).
func (t *tracer) meshSize() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mesh)
}

func (t *tracer) Graft(p peer.ID, topic string) {
	if topic == t.topic {
		t.mu.Lock()
		t.mesh[p] = struct{}{}
		t.mu.Unlock()
	}
}

func (t *tracer) Prune(p peer.ID, topic string) {
	if topic == t.topic {
		t.mu.Lock()
		delete(t.mesh, p)
		t.mu.Unlock()
	}
}

// OnClosedOutboundStream marks a peer gone: gossipsub then drops it from its
// mesh without calling Prune.
func (t *tracer) OnClosedOutboundStream(p peer.ID) { t.Prune(p, t.topic) }

func (t *tracer) DeliverMessage(*pubsub.Message) { t.c.accepted.Add(1) }
func (t *tracer) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationIgnored:
		t.c.ignored.Add(1)
	case pubsub.RejectValidationQueueFull, pubsub.RejectValidationThrottled:
		t.c.valDropped.Add(1)
	default:
		t.c.rejected.Add(1)
	}
}
func (t *tracer) DuplicateMessage(*pubsub.Message)         { t.c.duplicates.Add(1) }
func (t *tracer) DropRPC(*pubsub.RPC, peer.ID)             { t.c.dropped.Add(1) }
func (t *tracer) UndeliverableMessage(*pubsub.Message)     { t.c.undeliverable.Add(1) }
func (t *tracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (t *tracer) Join(string)                              {}
func (t *tracer) Leave(string)                             {}
func (t *tracer) ValidateMessage(*pubsub.Message)          {}
func (t *tracer) ThrottlePeer(peer.ID)                     {}
func (t *tracer) RecvRPC(rpc *pubsub.RPC)                  { t.gossip.count(0, rpc) }
func (t *tracer) SendRPC(rpc *pubsub.RPC, _ peer.ID)       { t.gossip.count(1, rpc) }

// scoreParams turns Reject verdicts into a penalty: P4 (invalid messages) on
// both topics, and nothing else, so scoring never punishes honest peers for
// being slow or new.
func scoreParams(app func(peer.ID) float64, topics ...string) *pubsub.PeerScoreParams {
	ps := &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics:               map[string]*pubsub.TopicScoreParams{},
		// The application score graylists authors that flood or were
		// excluded (police.appScore), not the honest peers relaying them.
		AppSpecificScore:  app,
		AppSpecificWeight: 1,
		DecayInterval:     pubsub.DefaultDecayInterval,
		DecayToZero:       pubsub.DefaultDecayToZero,
		RetainScore:       time.Hour,
	}
	for _, t := range topics {
		ps.Topics[t] = &pubsub.TopicScoreParams{
			SkipAtomicValidation:           true,
			TopicWeight:                    1,
			TimeInMeshQuantum:              time.Second, // divides P1 even at weight 0
			InvalidMessageDeliveriesWeight: -10,
			InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		}
	}
	return ps
}

// scoreThresholds: a peer with about 5 invalid messages gets no gossip from
// us, 8 and we ignore its messages altogether (P4 is the square of the count).
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		SkipAtomicValidation: true,
		GossipThreshold:      -250,
		PublishThreshold:     -500,
		GraylistThreshold:    -640,
	}
}
