package p2p

import (
	"strings"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// TestGossipBytesSplit: an RPC's parts add up to its encoded size with its
// length prefix, each part charged to its row.
func TestGossipBytesSplit(t *testing.T) {
	g := gossipBytes{topics: [3]string{"u", "s", "e"}}
	topic := "u"
	rpc := &pubsub.RPC{RPC: pb.RPC{
		Publish: []*pb.Message{{Data: make([]byte, 200), Topic: &topic}},
		Control: &pb.ControlMessage{Ihave: []*pb.ControlIHave{{TopicID: &topic, MessageIDs: []string{"0123456789abcdefghij", "x"}}}},
	}}
	g.count(1, rpc)
	snap := g.snapshot()
	var sum int64
	for _, f := range snap {
		sum += f.Out
	}
	want := int64(rpc.Size() + uvarintLen(uint64(rpc.Size())))
	if sum != want {
		t.Fatalf("parts sum to %d bytes, the RPC is %d", sum, want)
	}
	if f := snap["msg_updates"]; f.ItemsOut != 1 || f.Out < 200 {
		t.Fatalf("msg_updates %+v", f)
	}
	if f := snap["ihave"]; f.ItemsOut != 2 {
		t.Fatalf("ihave %+v", f)
	}
	if _, ok := snap["msg_state"]; ok {
		t.Fatal("nothing was sent on the state topic")
	}
}

// TestTrafficCountsGossip: a batch gossiped between two peers shows up in
// the receiver's stream bytes (gossipsub) and gossip parts.
func TestTrafficCountsGossip(t *testing.T) {
	a, b := newTestPeer(t, "traffic", nil), newTestPeer(t, "traffic", nil)
	connectAll(t, a, b)
	waitMesh(t, a, b)
	a.publish(t, 0, 1, 64)
	waitFor(t, "the batch", func() bool { return b.log.Count() == 64 })
	tr := b.Traffic()
	if f := tr.Gossip["msg_updates"]; f.ItemsIn < 1 || f.In < 64 {
		t.Fatalf("gossip parts: %+v", tr.Gossip)
	}
	// libp2p's bandwidth counter folds its totals in once a second.
	waitFor(t, "stream bytes of gossipsub at least its messages' bytes", func() bool {
		var meshsub int64
		for proto, f := range b.Traffic().Streams {
			if strings.HasPrefix(proto, "/meshsub/") {
				meshsub += f.In
			}
		}
		return meshsub >= tr.Gossip["msg_updates"].In
	})
}
