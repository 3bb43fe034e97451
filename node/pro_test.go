package node

import (
	"context"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
)

// A FedKSeed-Pro trainer (pool 16, 4 choices) proposes a slot per sample
// (ChooseSlot's: not all the same), states them as extension type 2, and logs
// the updates with their slots; a second trainer that takes the signed
// batches reaches the same weights; the same run replayed from the log too.
func TestProTrainerCarriesSlots(t *testing.T) {
	ctx := context.Background()
	m := testRun()
	m.Pool, m.PoolChoices = 16, 4
	trainer := func(machine uint64) (*Trainer, *store.Store) {
		log, err := store.OpenMemory(m)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { log.Close() })
		lm, err := model.Load(fixture)
		if err != nil {
			t.Fatal(err)
		}
		train, eval := testData(t)
		tr, _, err := NewTrainer(ctx, newEngine(t, lm, m, ""), lm, log, train, eval, TrainerConfig{Machine: machine, BatchSize: 2, Samples: 4}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tr, log
	}
	key := testKey(t, 1)
	a, alog := trainer(keyMachine(t, key))
	b, _ := trainer(keyMachine(t, testKey(t, 2)))
	run := p2p.NewRunTag(m.Run)
	seen := map[uint8]bool{}
	for range 6 {
		p, err := a.Propose(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Slots) != len(p.Codes) {
			t.Fatalf("%d slots for %d samples", len(p.Slots), len(p.Codes))
		}
		bt, err := p2p.SignBatchExt(key, run, p.First, p.Exp, p.Codes, p.Exts())
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(ctx, p, bt.Raw); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Apply(ctx, bt.Raw, bt.Updates()); err != nil {
			t.Fatal(err)
		}
		for i, j := range p.Slots {
			seen[j] = true
			u, ok, err := alog.Get(bt.Machine, p.First+uint64(i))
			if err != nil || !ok || !u.Slotted || u.Slot != j {
				t.Fatalf("logged %+v (%v %v), want slot %d", u, ok, err, j)
			}
		}
	}
	if len(seen) < 2 {
		t.Fatalf("24 samples all took slot %v: the choice is not made", seen)
	}
	a.Flush() // Commit leaves a's own updates to its next step's fused apply
	if a.eng.Weights().Hash() != b.eng.Weights().Hash() {
		t.Fatal("the peer that took the signed batches holds other weights")
	}
	c, _ := trainer(7)
	res, err := alog.Replay(ctx, c.eng, store.ReplayOptions{FromBase: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Hash != a.eng.Weights().Hash() {
		t.Fatal("replaying the Pro log gives other weights")
	}
}
