package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/zo"
)

// TestEquivocationSplitHeals is the permanent split: each half of an
// equivocation reaches a different peer before the two peers meet, so both
// hold the same samples with different values and nothing is missing. The
// per-machine digests of anti-entropy find the difference, the fetched half
// is evidence, and both peers exclude the machine and agree again.
func TestEquivocationSplitHeals(t *testing.T) {
	const run = "split"
	v1, v2 := newTestPeer(t, run, nil), newTestPeer(t, run, nil)
	a, b := newAttacker(t, run, true), newAttacker(t, run, true)
	a.connect(t, v1)
	b.connect(t, v2)
	waitFor(t, "attackers meshed", func() bool { return len(a.topic.ListPeers()) == 1 && len(b.topic.ListPeers()) == 1 })
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	tag := NewRunTag(run)
	honest := mustSign(t, v1.key, tag, 0, []int8{3, 3})
	x := mustSign(t, key, tag, 0, []int8{1, 2, 3, 4})
	y := mustSign(t, key, tag, 0, []int8{1, 2, -3, 4})
	a.publish(t, x.Raw)
	b.publish(t, y.Raw)
	a.publish(t, honest.Raw)
	waitFor(t, "halves stored", func() bool { return v1.log.Count() == 6 && v2.log.Count() == 4 })
	if v1.log.Digest() == v2.log.Digest() {
		t.Fatal("the halves gave equal digests")
	}
	connectAll(t, v1, v2)
	waitFor(t, "both exclude the equivocator", func() bool {
		return v1.log.Excluded(x.Machine) && v2.log.Excluded(x.Machine)
	})
	waitFor(t, "same set", func() bool { return v1.log.Digest() == v2.log.Digest() && v2.log.Count() == 2 })
	var want zo.SetDigest
	for _, u := range honest.Updates() {
		want.Add(u)
	}
	want.AddHash(zo.ExclusionHash(x.Machine))
	if v1.log.Digest() != want {
		t.Fatalf("digest %s, want the honest updates plus the exclusion", v1.log.Digest())
	}
	// The relayers were honest: nobody rejected anything.
	for _, v := range []*testPeer{v1, v2} {
		if st := v.Stats(); st.GossipRejected != 0 {
			t.Errorf("%d gossip messages rejected", st.GossipRejected)
		}
	}
	// Later batches of the machine are refused.
	a.publish(t, mustSign(t, key, tag, 10, []int8{1}).Raw)
	waitFor(t, "later batch refused", func() bool { return v1.Stats().Refused[ReasonExcluded] >= 1 })
	if v1.log.Count() != 2 {
		t.Fatalf("log holds %d updates", v1.log.Count())
	}
}

// TestValidatorEnforcesTheRules: bound, sample cap, proof of work and closed
// admission are rejected at the validator, with their reasons counted; a
// batch exactly at the bound is accepted.
func TestValidatorEnforcesTheRules(t *testing.T) {
	const run = "rules"
	admitted, _, err := MintIdentity(context.Background(), run, 6, 2)
	if err != nil {
		t.Fatal(err)
	}
	admittedPub, _ := admitted.GetPublic().Raw()
	rules := zo.Rules{GradBound: 16, MaxSamples: 1000, Admitted: map[uint64]bool{MachineOf(admittedPub): true}}
	v := newTestPeer(t, run, func(o *Options) { o.Rules, o.PowBits = rules, 6 })
	a := newAttacker(t, run, true)
	a.connect(t, v)
	waitFor(t, "attacker meshed", func() bool { return len(a.topic.ListPeers()) == 1 })
	tag := NewRunTag(run)
	sign := func(key crypto.PrivKey, first uint64, exp uint8, codes ...int8) []byte {
		b, err := SignBatch(key, tag, first, exp, codes)
		if err != nil {
			t.Fatal(err)
		}
		return b.Raw
	}
	outsider, _, err := MintIdentity(context.Background(), run, 6, 2)
	if err != nil {
		t.Fatal(err)
	}
	weak := keyWithoutPow(t, run, 6)
	a.publish(t, sign(admitted, 0, 255, 127, -127)) // the old extreme
	a.publish(t, sign(admitted, 2, 126, 65))        // one step past the bound
	a.publish(t, sign(admitted, 999, 120, 1, 1))    // crosses the sample cap
	a.publish(t, sign(outsider, 0, 120, 1))         // not admitted
	a.publish(t, sign(weak, 0, 120, 1))             // no proof of work
	a.publish(t, sign(admitted, 10, 126, 64, -64))  // exactly at the bound
	waitFor(t, "judged", func() bool { st := v.Stats(); return st.GossipRejected == 5 && v.log.Count() == 2 })
	got := v.Stats().Refused
	for reason, n := range map[string]uint64{ReasonBound: 2, ReasonSampleCap: 1, ReasonNotAdmitted: 2} {
		if got[reason] != n {
			t.Errorf("refused[%s] = %d, want %d (all %v)", reason, got[reason], n, got)
		}
	}
	if _, ok, _ := v.log.Get(MachineOf(admittedPub), 10); !ok {
		t.Error("the batch at the bound was not stored")
	}
}

// TestProofOfWorkRefused: in an open run, a key without the proof of work is refused.
func TestProofOfWorkRefused(t *testing.T) {
	const run = "pow"
	v := newTestPeer(t, run, func(o *Options) { o.PowBits = 8 })
	a := newAttacker(t, run, true)
	a.connect(t, v)
	waitFor(t, "attacker meshed", func() bool { return len(a.topic.ListPeers()) == 1 })
	minted, _, err := MintIdentity(context.Background(), run, 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	a.publish(t, mustSign(t, keyWithoutPow(t, run, 8), NewRunTag(run), 0, []int8{1}).Raw)
	a.publish(t, mustSign(t, minted, NewRunTag(run), 0, []int8{1}).Raw)
	waitFor(t, "judged", func() bool { return v.Stats().GossipRejected == 1 && v.log.Count() == 1 })
	if n := v.Stats().Refused[ReasonPow]; n != 1 {
		t.Fatalf("refused[pow] = %d", n)
	}
}

// TestFloodingAuthorIsRateLimited: past its burst, an author's batches are
// ignored (not rejected: relayers are not to blame) and the author is
// scored down; another author is unaffected.
func TestFloodingAuthorIsRateLimited(t *testing.T) {
	const run = "flood"
	v := newTestPeer(t, run, func(o *Options) { o.AuthorRate, o.AuthorBurst = 1, 100 })
	a := newAttacker(t, run, true)
	a.connect(t, v)
	waitFor(t, "attacker meshed", func() bool { return len(a.topic.ListPeers()) == 1 })
	flooder, _, _ := crypto.GenerateEd25519Key(nil)
	other, _, _ := crypto.GenerateEd25519Key(nil)
	tag := NewRunTag(run)
	codes := make([]int8, 50)
	for i := range 40 {
		a.publish(t, mustSign(t, flooder, tag, uint64(i*50), codes).Raw)
	}
	a.publish(t, mustSign(t, other, tag, 0, codes).Raw)
	waitFor(t, "flood judged", func() bool { return v.Stats().Refused[ReasonRate] >= 30 })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := v.log.Get(MachineOf(rawPub(t, other)), 0); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("other author not delivered: %+v", v.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := v.Stats(); st.GossipRejected != 0 {
		t.Fatalf("%d rejected: rate limiting must not penalise the relayer", st.GossipRejected)
	}
	id, _ := peerOf(rawPub(t, flooder))
	if v.pol.appScore(id) >= 0 {
		t.Fatal("the flooding author is not scored down")
	}
	if v.pol.appScore(a.h.ID()) != 0 {
		t.Fatal("the relaying host is scored down")
	}
}

func rawPub(t *testing.T, k crypto.PrivKey) []byte {
	t.Helper()
	b, err := k.GetPublic().Raw()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keyWithoutPow returns a key with fewer than bits of proof of work for run.
func keyWithoutPow(t *testing.T, run string, bits int) crypto.PrivKey {
	t.Helper()
	for {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		if PowBits(run, rawPub(t, k)) < bits {
			return k
		}
	}
}
