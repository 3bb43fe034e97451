package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

func testKey(t *testing.T, seed byte) crypto.PrivKey {
	t.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// publicTrainer is a trainer of a public-data run over the test data, as
// machine.
func publicTrainer(t *testing.T, m store.Manifest, machine uint64) *Trainer {
	t.Helper()
	log, err := store.OpenMemory(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	lm, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, lm, m, "")
	train, eval := testData(t)
	tr, _, err := NewTrainer(context.Background(), e, lm, log, train, eval,
		TrainerConfig{Machine: machine, BatchSize: m.Data.BatchSize, Samples: 4, GradBound: m.GradBound, Public: m.Data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func publicRun(t *testing.T) store.Manifest {
	m := testRun()
	m.GradBound = 4
	train, _ := testData(t)
	m.Data = &store.PublicData{Digest: train.Digest(), BatchSize: 2, Tolerance: m.GradBound / 8}
	return m
}

// TestAccusationVerdicts: two machines train on a public-data run, each
// applying the other's batches as they come. A third peer, holding more
// updates than either basis, re-computes their samples at the stated basis:
// an accusation against an honest batch (forged by a third key) has excess
// 0 and is rejected; one against a batch whose codes were sign-flipped is
// confirmed. Re-computation leaves the verifier's weights bit for bit as
// they were.
func TestAccusationVerdicts(t *testing.T) { accusationVerdicts(t, false) }

// TestProAccusationVerdicts is TestAccusationVerdicts in a FedKSeed-Pro run
// (pool 16, 4 choices): batches carry slots as well as a basis, and the
// re-computation must take each sample's carried slot (an honest claim's
// excess is 0 only along the seed it was computed on).
func TestProAccusationVerdicts(t *testing.T) { accusationVerdicts(t, true) }

func accusationVerdicts(t *testing.T, pro bool) {
	ctx := context.Background()
	m := publicRun(t)
	if pro {
		m.Pool, m.PoolChoices = 16, 4
	}
	run := p2p.NewRunTag(m.Run)
	keyA, keyB, keyV := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	mA, mB := keyMachine(t, keyA), keyMachine(t, keyB)
	a, b := publicTrainer(t, m, mA), publicTrainer(t, m, mB)
	v := publicTrainer(t, m, keyMachine(t, keyV))

	type signed struct {
		batch *p2p.Batch
		lie   *p2p.Batch
	}
	var batches []signed
	step := func(tr *Trainer, key crypto.PrivKey, others ...*Trainer) {
		p, err := tr.Propose(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.Basis == nil || pro != (p.Slots != nil) {
			t.Fatalf("a public-data proposal with basis %v, slots %v", p.Basis, p.Slots)
		}
		exts := p.Exts()
		bt, err := p2p.SignBatchExt(key, run, p.First, p.Exp, p.Codes, exts)
		if err != nil {
			t.Fatal(err)
		}
		flipped := make([]int8, len(p.Codes))
		for i, c := range p.Codes {
			flipped[i] = -c
		}
		// The same samples with flipped codes, signed by the same key: the
		// liar's batch (never logged: it would equivocate).
		lie, err := p2p.SignBatchExt(key, run, p.First, p.Exp, flipped, exts)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Commit(ctx, p, bt.Raw); err != nil {
			t.Fatal(err)
		}
		for _, o := range others {
			if _, err := o.Apply(ctx, bt.Raw, bt.Updates()); err != nil {
				t.Fatal(err)
			}
		}
		batches = append(batches, signed{bt, lie})
	}
	for range 3 {
		step(a, keyA, b, v)
		step(b, keyB, v) // a learns b's batches late: its basis differs
	}
	for _, s := range batches {
		if s.batch.Machine == mB {
			if _, err := a.Apply(ctx, s.batch.Raw, s.batch.Updates()); err != nil {
				t.Fatal(err)
			}
		}
	}
	step(a, keyA, b, v)
	before := v.eng.Weights().Hash()

	confirmed, flipsSeen := 0, 0
	for _, s := range batches {
		for k := range s.batch.Codes {
			sample := s.batch.First + uint64(k)
			honest, err := p2p.NewAccusation(keyV, run, s.batch.Raw, sample)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := v.AccusationExcess(ctx, honest)
			if err != nil {
				t.Fatal(err)
			}
			if ex != 0 {
				t.Fatalf("honest batch of %016x, sample %d: excess %g, want 0 (same BLAS)", s.batch.Machine, sample, ex)
			}
			lie, err := p2p.NewAccusation(keyV, run, s.lie.Raw, sample)
			if err != nil {
				t.Fatal(err)
			}
			ex, err = v.AccusationExcess(ctx, lie)
			if err != nil {
				t.Fatal(err)
			}
			if s.batch.Codes[k] != 0 {
				flipsSeen++
			}
			if ex > m.Data.Tolerance {
				confirmed++
			}
		}
	}
	if confirmed == 0 || confirmed < flipsSeen/2 {
		t.Fatalf("flipped claims confirmed %d times of %d non-zero codes", confirmed, flipsSeen)
	}
	t.Logf("flipped claims confirmed: %d of %d samples with a non-zero code", confirmed, flipsSeen)
	if v.eng.Weights().Hash() != before {
		t.Fatal("re-computation changed the verifier's weights")
	}
	// A basis naming an update the verifier lacks defers, never judges.
	far := p2p.Basis{{Machine: mA, Samples: p2p.Ranges{{Lo: 0, Hi: 1 << 20}}}}
	if _, err := v.Recompute(ctx, mB, 0, 0, far, 0); err == nil {
		t.Fatal("re-computed at a basis the verifier does not hold")
	}
}

func keyMachine(t *testing.T, k crypto.PrivKey) uint64 {
	t.Helper()
	raw, err := k.GetPublic().Raw()
	if err != nil {
		t.Fatal(err)
	}
	return p2p.MachineOf(ed25519.PublicKey(raw))
}

// A producer whose weights hold a set too fragmented for the extension
// block (here a machine's every other sample, 9000 ranges) states a compact
// basis instead, computes at that state, and a verifier holding the same
// updates re-computes its claims exactly.
func TestFragmentedBasisIsCompacted(t *testing.T) {
	ctx := context.Background()
	m := publicRun(t)
	run := p2p.NewRunTag(m.Run)
	key := testKey(t, 4)
	p, v := publicTrainer(t, m, keyMachine(t, key)), publicTrainer(t, m, 99)
	var scattered []zo.Update
	for i := range uint64(9000) {
		scattered = append(scattered, zo.Update{Machine: 5, Sample: 2 * i, Exp: 100, Code: 1})
	}
	scattered = append(scattered, zo.Update{Machine: 6, Sample: 0, Exp: 100, Code: 1})
	for _, tr := range []*Trainer{p, v} {
		if _, err := tr.Apply(ctx, nil, scattered); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p2p.AppendBasis(nil, p.Basis())); n <= p2p.MaxExtSize {
		t.Fatalf("the full basis is %d bytes: the test does not exceed the block", n)
	}
	before := p.eng.Weights().Hash()
	pr, err := p.Propose(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.eng.Weights().Hash() != before {
		t.Fatal("proposing at a compact basis changed the weights")
	}
	b, err := p2p.SignBatchExt(key, run, pr.First, pr.Exp, pr.Codes, []p2p.Ext{{Type: p2p.ExtBasis, Value: p2p.AppendBasis(nil, pr.Basis)}})
	if err != nil {
		t.Fatalf("the compact basis does not fit: %v", err)
	}
	if pr.Basis.Count() >= 9001 {
		t.Fatalf("compact basis holds %d updates", pr.Basis.Count())
	}
	for k := range b.Codes {
		acc, err := p2p.NewAccusation(testKey(t, 5), run, b.Raw, b.First+uint64(k))
		if err != nil {
			t.Fatal(err)
		}
		if ex, err := v.AccusationExcess(ctx, acc); err != nil || ex != 0 {
			t.Fatalf("sample %d at the compact basis: excess %g, %v", k, ex, err)
		}
	}
}

// The accusations waiting for re-computation are bounded: 4 per accuser,
// 64 in all; more are dropped and counted, and a copy of one already
// waiting is not queued twice.
func TestAccusationQueueBounds(t *testing.T) {
	m := publicRun(t)
	run := p2p.NewRunTag(m.Run)
	tr := publicTrainer(t, m, 1)
	d := &Daemon{run: &Run{Trainer: tr, Log: tr.log}, ver: newVerifier()}
	victim := testKey(t, 7)
	exts := []p2p.Ext{{Type: p2p.ExtBasis, Value: p2p.AppendBasis(nil, nil)}}
	b, err := p2p.SignBatchExt(victim, run, 0, 127, make([]int8, 64), exts)
	if err != nil {
		t.Fatal(err)
	}
	accuse := func(accuser byte, sample uint64) *p2p.Evidence {
		ev, err := p2p.NewAccusation(testKey(t, accuser), run, b.Raw, sample)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	for s := range uint64(10) {
		d.offerAccusation(accuse(8, s))
	}
	d.offerAccusation(accuse(8, 0)) // a relayed copy
	if st := d.Status(); st.Verification.AccusationsPending != maxChecksPerAccuser || st.Verification.AccusationsDropped != 10-maxChecksPerAccuser {
		t.Fatalf("one accuser: %d pending, %d dropped", st.Verification.AccusationsPending, st.Verification.AccusationsDropped)
	}
	for a := range byte(40) {
		for s := range uint64(2) {
			d.offerAccusation(accuse(20+a, s))
		}
	}
	if n := len(d.ver.checks); n != maxPendingChecks {
		t.Fatalf("%d accusations pending, at most %d", n, maxPendingChecks)
	}
}

// A basis computed before a ban names the banned machine's updates. A peer
// that banned it first still reaches that basis, from the signed batches a
// ban keeps, and judges the batch as peers that had not banned it yet do;
// after an exclusion that purges the batches (equivocation) it cannot, and
// says so instead of judging.
func TestBasisNamingABannedMachine(t *testing.T) {
	ctx := context.Background()
	m := publicRun(t)
	run := p2p.NewRunTag(m.Run)
	keyA, keyX := testKey(t, 11), testKey(t, 12)
	mA, mX := keyMachine(t, keyA), keyMachine(t, keyX)
	a, x := publicTrainer(t, m, mA), publicTrainer(t, m, mX)
	banning, excluding := publicTrainer(t, m, 13), publicTrainer(t, m, 14)
	sign := func(tr *Trainer, key crypto.PrivKey) *p2p.Batch {
		p, err := tr.Propose(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p2p.SignBatchExt(key, run, p.First, p.Exp, p.Codes, []p2p.Ext{{Type: p2p.ExtBasis, Value: p2p.AppendBasis(nil, p.Basis)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Commit(ctx, p, b.Raw); err != nil {
			t.Fatal(err)
		}
		return b
	}
	bx := sign(x, keyX)
	for _, tr := range []*Trainer{a, banning, excluding} {
		if _, err := tr.Apply(ctx, bx.Raw, bx.Updates()); err != nil {
			t.Fatal(err)
		}
	}
	ba := sign(a, keyA) // its basis names x's updates
	for _, tr := range []*Trainer{banning, excluding} {
		if _, err := tr.Apply(ctx, ba.Raw, ba.Updates()); err != nil {
			t.Fatal(err)
		}
	}
	removed, _, err := banning.log.Ban(ctx, mX, []byte("accusation"))
	if err != nil {
		t.Fatal(err)
	}
	banning.Exclude(mX, removed)
	if removed, _, err = excluding.log.Exclude(ctx, mX, []byte("evidence")); err != nil {
		t.Fatal(err)
	}
	excluding.Exclude(mX, removed)
	before := banning.eng.Weights().Hash()
	for k := range ba.Codes {
		acc, err := p2p.NewAccusation(testKey(t, 15), run, ba.Raw, ba.First+uint64(k))
		if err != nil {
			t.Fatal(err)
		}
		if ex, err := banning.AccusationExcess(ctx, acc); err != nil || ex != 0 {
			t.Fatalf("sample %d, after the ban: excess %g, %v", k, ex, err)
		}
		if _, err := excluding.AccusationExcess(ctx, acc); !errors.Is(err, errBasisExcluded) {
			t.Fatalf("sample %d, after an exclusion that purged the batches: %v, want errBasisExcluded", k, err)
		}
	}
	if banning.eng.Weights().Hash() != before {
		t.Fatal("reaching a basis with a banned machine's updates changed the weights")
	}
}
