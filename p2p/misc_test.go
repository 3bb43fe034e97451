package p2p

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/zopeer/zopeer/zo"
)

func TestIdentityPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	k1, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("key changed across loads")
	}
	// Two successive peers on the same key have the same ID and machine.
	var ids []string
	var machines []uint64
	for range 2 {
		o := testOptions(t, "id", NewMemLog())
		o.Key = k2
		p, err := New(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID().String())
		machines = append(machines, p.Machine())
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	if ids[0] != ids[1] || machines[0] != machines[1] {
		t.Fatalf("identity not persisted: %v %v", ids, machines)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(path); err == nil {
		t.Fatal("garbage key accepted")
	}
}

func TestStateAnnouncements(t *testing.T) {
	const run = "state"
	want := State{Count: 42, Digest: zo.SetDigest{9}, WeightsHash: [32]byte{7}}
	a := newTestPeer(t, run, func(o *Options) {
		o.State = func() (State, bool) { return want, true }
		o.StateInterval = 50 * time.Millisecond
	})
	b := newTestPeer(t, run, nil)
	connectAll(t, a, b)
	var got State
	select {
	case got = <-b.states:
	case <-time.After(60 * time.Second):
		t.Fatal("no state announcement")
	}
	if got.Machine != a.Machine() || got.Count != 42 || got.Digest != want.Digest || got.WeightsHash != want.WeightsHash {
		t.Fatalf("got %+v", got)
	}

	// A replayed or older announcement is ignored; a newer one accepted.
	raw, err := EncodeState(a.key, a.run, State{Time: got.Time, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	msg := &pubsub.Message{Message: &pb.Message{Data: raw}}
	if r := b.validateState(context.Background(), a.ID(), msg); r != pubsub.ValidationIgnore {
		t.Errorf("replayed state: %v", r)
	}
	raw, _ = EncodeState(a.key, a.run, State{Time: uint64(time.Now().Add(time.Hour).UnixMilli())})
	if r := b.validateState(context.Background(), a.ID(), &pubsub.Message{Message: &pb.Message{Data: raw}}); r != pubsub.ValidationIgnore {
		t.Errorf("state from the future: %v", r)
	}
	raw[len(raw)-1] ^= 1
	if r := b.validateState(context.Background(), a.ID(), &pubsub.Message{Message: &pb.Message{Data: raw}}); r != pubsub.ValidationReject {
		t.Errorf("forged state: %v", r)
	}
}

func TestQUIC(t *testing.T) {
	quic := func(o *Options) { o.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} }
	a, b := newTestPeer(t, "quic", quic), newTestPeer(t, "quic", quic)
	connectAll(t, a, b)
	waitMesh(t, a, b)
	a.publish(t, 0, 3, 64)
	waitFor(t, "delivery over QUIC", func() bool { return b.log.Count() == 3*64 })
}

// TestDHTDiscovery: two peers that only know a bootstrap node find each other
// through the DHT rendezvous and then share updates.
func TestDHTDiscovery(t *testing.T) {
	const run = "dht"
	dhtOn := func(o *Options) {
		o.DHT, o.DHTServer = true, true
		o.DiscoveryInterval = 200 * time.Millisecond
	}
	boot := newTestPeer(t, run, dhtOn)
	var ps []*testPeer
	for range 2 {
		ps = append(ps, newTestPeer(t, run, func(o *Options) {
			dhtOn(o)
			o.Bootstrap = boot.Addrs()
		}))
	}
	waitFor(t, "peers find each other", func() bool {
		return ps[0].host.Network().Connectedness(ps[1].ID()) == network.Connected
	})
	ps[0].publish(t, 0, 2, 64)
	waitFor(t, "updates reach the other peer", func() bool { return ps[1].log.Count() == 2*64 })
}

func TestFetchManifest(t *testing.T) {
	const run = "manifest"
	manifest := []byte(`{"run":"manifest","lr":0.001}`)
	a := newTestPeer(t, run, func(o *Options) { o.Manifest = manifest })
	b := newTestPeer(t, run, func(o *Options) { o.Manifest = manifest })
	joiner := newTestPeer(t, run, nil)
	connectAll(t, a, b, joiner)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, err := joiner.FetchManifest(ctx)
	if err != nil || !bytes.Equal(got, manifest) {
		t.Fatalf("got %q, %v", got, err)
	}
	// Peers that disagree are an error, not a coin toss.
	liar := newTestPeer(t, run, func(o *Options) { o.Manifest = []byte(`{"run":"manifest","lr":1}`) })
	connectAll(t, liar, joiner)
	waitFor(t, "sync protocol known", func() bool { return len(joiner.syncPeers()) == 3 })
	if _, err := joiner.FetchManifest(ctx); err == nil {
		t.Fatal("conflicting manifests accepted")
	}
}

// TestNATOptions: the NAT traversal options build a working host (their
// effect needs real NATs, which loopback cannot show).
func TestNATOptions(t *testing.T) {
	relay := newTestPeer(t, "nat", func(o *Options) {
		o.RelayService, o.NATService, o.AutoNATv2 = true, true, true
	})
	client := newTestPeer(t, "nat", func(o *Options) {
		o.RelayClient, o.HolePunching, o.StaticRelays = true, true, relay.Addrs()
	})
	connectAll(t, relay, client)
	waitMesh(t, relay, client)
	client.publish(t, 0, 1, 64)
	waitFor(t, "delivery", func() bool { return relay.log.Count() == 64 })
}
