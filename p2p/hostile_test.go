package p2p

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"github.com/zopeer/zopeer/zo"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// attacker is a bare libp2p host that speaks zopeer's topics and sync
// protocol without any of its checks.
type attacker struct {
	h     host.Host
	key   crypto.PrivKey
	topic *pubsub.Topic
}

// newAttacker starts one; a subscribed attacker looks like any peer of the
// run, an unsubscribed one gets no gossip relayed to it.
func newAttacker(t *testing.T, run string, subscribe bool) *attacker {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID), pubsub.WithFloodPublish(true), pubsub.WithPeerOutboundQueueSize(4096))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(updatesTopic(run))
	if err != nil {
		t.Fatal(err)
	}
	if subscribe {
		if _, err := topic.Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	return &attacker{h: h, key: key, topic: topic}
}

func (a *attacker) connect(t *testing.T, ps ...*testPeer) {
	t.Helper()
	for _, p := range ps {
		if err := a.h.Connect(context.Background(), peer.AddrInfo{ID: p.ID(), Addrs: p.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
}

func (a *attacker) publish(t *testing.T, data []byte) {
	t.Helper()
	if err := a.topic.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
}

// signRaw appends a valid signature by key to any body, well-formed or not.
func signRaw(key crypto.PrivKey, body []byte) []byte {
	sk, _ := ed25519Key(key)
	return append(append([]byte(nil), body...), ed25519.Sign(sk, signed(batchDomain, body))...)
}

// rawBody builds a batch body field by field (varints as given).
func rawBody(version byte, run RunTag, key crypto.PrivKey, first, count []byte, exp byte, codes []byte) []byte {
	sk, _ := ed25519Key(key)
	b := []byte{version}
	b = append(b, run[:]...)
	b = append(b, sk.Public().(ed25519.PublicKey)...)
	b = append(b, first...)
	b = append(b, count...)
	b = append(b, exp)
	return append(b, codes...)
}

func mustSign(t *testing.T, key crypto.PrivKey, run RunTag, first uint64, codes []int8) *Batch {
	t.Helper()
	b, err := SignBatch(key, run, first, 7, codes)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileGossip: malformed, oversized, wrong-run, forged and equivocating
// messages are rejected, a replay is ignored, and the logs gain only
// legitimate updates.
func TestHostileGossip(t *testing.T) {
	const run = "hostile"
	v1, v2 := newTestPeer(t, run, nil), newTestPeer(t, run, nil)
	connectAll(t, v1, v2)
	// Two attackers, so that neither is graylisted by peer scoring before all
	// its messages were judged.
	a, b := newAttacker(t, run, true), newAttacker(t, run, true)
	// c has never seen any batch: its replay reaches the victims.
	c := newAttacker(t, run, false)
	for _, x := range []*attacker{a, b, c} {
		x.connect(t, v1, v2)
	}
	waitFor(t, "attackers see victims", func() bool {
		return len(a.topic.ListPeers()) == 2 && len(b.topic.ListPeers()) == 2 && len(c.topic.ListPeers()) == 2
	})
	tag := NewRunTag(run)

	// A legitimate batch of machine eq, relayed by a, then a replay of it and
	// a conflicting batch. eq is not a's host key: the exclusion that follows
	// graylists eq's own peer ID, and a must stay heard for the rest.
	eq, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	legit := mustSign(t, eq, tag, 0, []int8{1, 2, 3, 4, 5, 6, 7, 8})
	a.publish(t, legit.Raw)
	waitFor(t, "legit batch stored", func() bool { return v1.log.Count() == 8 && v2.log.Count() == 8 })
	c.publish(t, legit.Raw) // a replay: the victims' seen-caches drop it
	equiv := mustSign(t, eq, tag, 4, []int8{5, 6, 7, -8, 9, 10, 11, 12})
	a.publish(t, equiv.Raw)
	// An already-logged batch under a new message ID: a sub-batch signed anew.
	a.publish(t, mustSign(t, eq, tag, 0, []int8{1, 2}).Raw)

	honest := v1.key
	forged := mustSign(t, a.key, tag, 100, []int8{1})
	sk, _ := ed25519Key(honest)
	copy(forged.Raw[9:41], sk.Public().(ed25519.PublicKey)) // claim v1's machine
	flipped := mustSign(t, a.key, tag, 200, []int8{1, 2, 3})
	flipped.Raw[len(flipped.Raw)-65] ^= 1
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	hostileA := [][]byte{
		{1, 2, 3}, // malformed
		forged.Raw,
		flipped.Raw,
		signRaw(a.key, rawBody(WireVersion, tag, a.key, uv(math.MaxUint64-1), uv(4), 7, []byte{1, 2, 3, 4})), // overflow
		signRaw(a.key, rawBody(WireVersion, tag, a.key, []byte{0x81, 0x00}, uv(1), 7, []byte{1})),            // non-minimal varint
	}
	hostileB := [][]byte{
		make([]byte, MaxBatchSize+1), // oversized
		mustSign(t, b.key, NewRunTag("other run"), 0, []int8{1}).Raw,
		signRaw(b.key, rawBody(3, tag, b.key, uv(0), uv(1), 7, []byte{1})),              // version
		signRaw(b.key, rawBody(WireVersion, tag, b.key, uv(0), uv(1), 7, []byte{0x80})), // code -128
		append(mustSign(t, b.key, tag, 0, []int8{1}).Raw, 0),                            // trailing byte
	}
	for _, m := range hostileA {
		a.publish(t, m)
	}
	for _, m := range hostileB {
		b.publish(t, m)
	}
	// The equivocation is not rejected (an honest relayer may forward one
	// half): it is ignored, and its evidence excludes a's machine everywhere.
	wantRejected := uint64(len(hostileA) + len(hostileB))
	for deadline := time.Now().Add(60 * time.Second); v1.Stats().GossipRejected != wantRejected || v2.Stats().GossipRejected != wantRejected; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rejections: want %d each;\nv1 %+v\nv2 %+v", wantRejected, v1.Stats(), v2.Stats())
		}
	}
	waitFor(t, "equivocator excluded", func() bool { return v1.log.Excluded(legit.Machine) && v2.log.Excluded(legit.Machine) })
	for _, v := range []*testPeer{v1, v2} {
		if n := v.log.Count(); n != 0 {
			t.Errorf("victim log holds %d updates, want none: the 8 legitimate ones were the equivocator's", n)
		}
		var want zo.SetDigest
		want.AddHash(zo.ExclusionHash(legit.Machine))
		if v.log.Digest() != want {
			t.Errorf("digest %s, want the exclusion's alone", v.log.Digest())
		}
		refused := v.Stats().Refused
		for reason, n := range map[string]uint64{ReasonMalformed: 6, ReasonSignature: 2, ReasonWrongRun: 1, ReasonVersion: 1} {
			if refused[reason] < n {
				t.Errorf("refused[%s] = %d, want ≥ %d (all: %v)", reason, refused[reason], n, refused)
			}
		}
		// The conflicting batch meets either the held half (an equivocation
		// caught here) or, if the other victim's evidence came first, an
		// excluded machine.
		if refused[ReasonEquivocation]+refused[ReasonExcluded] < 1 {
			t.Errorf("the conflicting batch was not refused: %v", refused)
		}
		st := v.Stats()
		if st.GossipIgnored < 1 || st.GossipDuplicates < 1 {
			t.Errorf("replays not ignored: %+v", st)
		}
	}
	// At least one victim caught the conflict itself, at the first sample
	// the two batches disagree on.
	var caught bool
	for _, v := range []*testPeer{v1, v2} {
		for _, f := range v.Flagged() {
			caught = caught || f.Machine == legit.Machine && f.Sample == 7
		}
	}
	if !caught {
		t.Errorf("no victim flagged machine %d at sample 7: %+v %+v", legit.Machine, v1.Flagged(), v2.Flagged())
	}
}

// TestBogusSyncDonor: a donor that lies, forges, floods or stalls adds nothing
// to the log; an honest donor afterwards fills it.
func TestBogusSyncDonor(t *testing.T) {
	const run = "bogus"
	victim := newTestPeer(t, run, func(o *Options) {
		o.SyncInterval = time.Hour
		o.SyncTimeout = time.Second
	})
	a := newAttacker(t, run, true)
	tag := NewRunTag(run)
	good := mustSign(t, a.key, tag, 0, []int8{1, 2, 3, 4})
	other := mustSign(t, victim.key, tag, 0, []int8{9}) // authentic, wrong machine
	forged := mustSign(t, a.key, tag, 0, []int8{1, 2, 3, 5})
	forged.Raw[len(forged.Raw)-1] ^= 1

	var mode atomic.Int32
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	digest := encodeDigest([]Holding{{Machine: good.Machine, Samples: Ranges{{0, 99}}}}, nil, MaxDigestSize)
	// A digest claiming many machines, for a donor that then sends nothing.
	var many []Holding
	for m := range uint64(50) {
		many = append(many, Holding{Machine: m, Samples: Ranges{{0, 1 << 30}}})
	}
	bigDigest := encodeDigest(many, nil, MaxDigestSize)
	var fetches atomic.Int32
	a.h.SetStreamHandler(SyncProtocol, func(s network.Stream) {
		defer s.Close()
		r := bufio.NewReader(s)
		body, err := readFrame(r, maxRequestSize)
		if err != nil {
			return
		}
		q, err := decodeRequest(body, tag)
		if err != nil {
			return
		}
		if q.Kind == kindDigest {
			switch mode.Load() {
			case 4:
				writeFrame(s, []byte{5, 1, 2}) // garbage digest
			case 5:
				writeFrame(s, bigDigest)
			default:
				writeFrame(s, digest)
			}
			return
		}
		fetches.Add(1)
		switch mode.Load() {
		case 0:
			writeFrame(s, forged.Raw)
		case 1:
			writeFrame(s, other.Raw)
		case 2:
			s.Write(binary.AppendUvarint(nil, 1<<30)) // a frame too big to accept
		case 3:
			<-stop // stall past the deadline
		}
		writeFrame(s, nil)
	})
	a.connect(t, victim)
	waitFor(t, "sync protocol known", func() bool { return len(victim.syncPeers()) == 1 })
	for m := int32(0); m < 6; m++ {
		mode.Store(m)
		before, fetched := victim.Stats().SyncRejected, fetches.Load()
		if n := victim.SyncNow(context.Background()); n != 0 {
			t.Fatalf("mode %d: fetched %d updates from a bogus donor", m, n)
		}
		if m != 3 && m != 5 && victim.Stats().SyncRejected == before {
			t.Errorf("mode %d: bogus response not counted", m)
		}
		// A donor that fails once is not asked again in the round (a round
		// the topic join triggered may run too: at most 2).
		if n := fetches.Load() - fetched; m != 4 && (n < 1 || n > 2) {
			t.Errorf("mode %d: %d fetches in one round, want 1", m, n)
		}
	}
	if n := victim.log.Count(); n != 0 {
		t.Fatalf("log gained %d updates from a bogus donor", n)
	}

	// An honest donor holding the authentic batch.
	donor := newTestPeer(t, run, func(o *Options) { o.SyncInterval = time.Hour })
	donor.log.Store(good)
	connectAll(t, victim, donor)
	waitFor(t, "sync protocol known", func() bool { return len(victim.syncPeers()) == 2 })
	mode.Store(0)
	waitFor(t, "honest batch fetched", func() bool {
		victim.SyncNow(context.Background())
		return victim.log.Count() == 4
	})
	if u, ok, _ := victim.log.Get(good.Machine, 3); !ok || u.Code != 4 {
		t.Fatalf("sample 3 = %+v, %v; want the authentic code 4", u, ok)
	}
}
