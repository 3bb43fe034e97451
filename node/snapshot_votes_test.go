package node

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/zo"
)

func testDonor(t *testing.T) (peer.ID, uint64) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sk.GetPublic().Raw()
	if err != nil {
		t.Fatal(err)
	}
	return id, p2p.MachineOf(ed25519.PublicKey(raw))
}

// In a run that trains on, every peer announces its own current state and
// no two agree, but the donors serve one agreed checkpoint: their snapshot
// infos attest it, each once per machine, so a quorum forms; a refused,
// discredited or keyless donor, or a repeated attestation, adds nothing.
func TestSnapshotQuorumCountsDonorInfos(t *testing.T) {
	agreed := snapPair{dig: zo.SetDigest{1}, hash: [32]byte{1}}
	d := &Daemon{ps: PeerSettings{StateEvery: time.Second}, states: map[uint64]heard{}, discredited: map[uint64]time.Time{}}
	now := time.Now()
	var offers []p2p.SnapshotOffer
	ids := make([]peer.ID, 6)
	for i := range ids {
		id, m := testDonor(t)
		ids[i] = id
		// Current states all differ: announcements alone give 1 vote per pair.
		d.states[m] = heard{st: p2p.State{Machine: m, Count: 100 + uint64(i), Digest: zo.SetDigest{byte(10 + i)}, WeightsHash: [32]byte{byte(10 + i)}}, at: now}
		offers = append(offers, p2p.SnapshotOffer{From: id, Info: p2p.SnapshotInfo{Count: 90, Digest: agreed.dig, Hash: agreed.hash}})
		if i == 4 {
			d.discredited[m] = now.Add(time.Minute)
		}
	}
	refused := map[peer.ID]bool{ids[5]: true}
	offers = append(offers, offers[0]) // the same donor answering twice
	offers = append(offers, p2p.SnapshotOffer{From: peer.ID("not a key"), Info: offers[0].Info})

	if _, votes := tally(d.attestations(nil, refused)); votes != 1 {
		t.Fatalf("announcements alone: %d votes, want 1 (no two peers hold the same state)", votes)
	}
	best, votes := tally(d.attestations(offers, refused))
	if best != agreed || votes != 4 {
		t.Fatalf("with donor infos: pair %x/%x with %d votes, want the agreed pair with 4 (donors 0–3)", best.dig[:2], best.hash[:2], votes)
	}

	// A machine that announces the agreed pair and serves it counts once.
	m0, _ := p2p.MachineOfPeer(ids[0])
	d.states[m0] = heard{st: p2p.State{Machine: m0, Count: 90, Digest: agreed.dig, WeightsHash: agreed.hash}, at: now}
	if _, votes := tally(d.attestations(offers, refused)); votes != 4 {
		t.Fatalf("a machine attesting twice: %d votes, want 4", votes)
	}

	// A stale announcement does not count; a donor's info is fresh by
	// construction (asked this round).
	d.states[m0] = heard{st: p2p.State{Machine: m0, Count: 90, Digest: agreed.dig, WeightsHash: agreed.hash}, at: now.Add(-time.Hour)}
	if _, votes := tally(d.attestations(offers[1:2], refused)); votes != 1 {
		t.Fatalf("a stale announcement and one donor: %d votes, want 1", votes)
	}
}

// A liar serving the agreed digest with other weights attests its own pair,
// which the majority outvotes; ties go to the smaller hash whatever the order.
func TestSnapshotTallyMajority(t *testing.T) {
	good := snapPair{dig: zo.SetDigest{1}, hash: [32]byte{2}}
	lie := snapPair{dig: zo.SetDigest{1}, hash: [32]byte{1}}
	atts := []attestation{{1, lie}, {2, good}, {3, good}, {1, lie}}
	if best, votes := tally(atts); best != good || votes != 2 {
		t.Fatalf("got %x with %d votes, want the honest pair with 2", best.hash[:1], votes)
	}
	for _, atts := range [][]attestation{{{1, good}, {2, lie}}, {{2, lie}, {1, good}}} {
		if best, votes := tally(atts); best != lie || votes != 1 {
			t.Fatalf("tie: got %x with %d votes, want the smaller hash", best.hash[:1], votes)
		}
	}
}
