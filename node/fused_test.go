package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// A trainer leaves its own and its peers' updates pending until the next
// step applies them in its first forward pass (zo.Engine.ApplyStep). Its
// proposals are bit for bit those of a trainer that applies every update as
// it takes it, and every reader of the weights (flush, checkpoint, eval,
// overflow, re-verification's basis, exclusion, the next step) finds the
// weights of that trainer.
func TestPendingUpdatesReachEveryReader(t *testing.T) {
	ctx := context.Background()
	m := testRun()
	logs := make([]*store.Store, 2)
	for i := range logs {
		l, err := store.OpenMemory(m)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		logs[i] = l
	}
	fused, ef := newTrainer(t, logs[0], m)
	eager, ee := newTrainer(t, logs[1], m)
	rng := rand.New(rand.NewPCG(4, 4))
	peerSample := uint64(0)
	step := func(what string) {
		t.Helper()
		// Peers' updates arrive between steps, taken by both alike.
		us := make([]zo.Update, rng.IntN(6))
		for i := range us {
			us[i] = zo.Update{Machine: 20 + uint64(rng.IntN(3)), Sample: peerSample, Exp: uint8(115 + rng.IntN(6)), Code: int8(rng.IntN(255) - 127)}
			peerSample++
		}
		if _, err := fused.Take(ctx, nil, us); err != nil {
			t.Fatal(err)
		}
		if _, err := eager.Apply(ctx, nil, us); err != nil {
			t.Fatal(err)
		}
		pf, err := fused.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pe, err := eager.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		eager.Flush()
		if fmt.Sprint(pf) != fmt.Sprint(pe) {
			t.Fatalf("%s: fused proposal %+v, eager %+v", what, pf, pe)
		}
		if len(fused.pending) == 0 {
			t.Fatalf("%s: nothing pending after a step: the test checks nothing", what)
		}
	}
	same := func(what string) {
		t.Helper()
		if hf, he := ef.Weights().Hash(), ee.Weights().Hash(); hf != he {
			t.Fatalf("%s: weights %x, want %x", what, hf[:8], he[:8])
		}
	}
	for i := range 3 {
		step(fmt.Sprintf("step %d", i))
	}
	readers := []struct {
		name string
		read func() error
	}{
		{"flush", func() error { fused.Flush(); return nil }},
		{"checkpoint", func() error {
			ck, err := fused.Checkpoint(ctx)
			if err == nil && ck.Hash != ee.Weights().Hash() {
				err = fmt.Errorf("checkpoint hash %x", ck.Hash[:8])
			}
			return err
		}},
		{"eval", func() error {
			lf, _, err := fused.Eval(ctx)
			if err != nil {
				return err
			}
			le, _, err := eager.Eval(ctx)
			if err == nil && lf != le {
				err = fmt.Errorf("eval loss %v, want %v", lf, le)
			}
			return err
		}},
		{"overflow", fused.Overflow},
		{"re-verification's basis", func() error {
			return fused.atBasis(compactBasis(fused.Basis()), 0, func() error {
				if hf, he := ef.Weights().Hash(), ee.Weights().Hash(); hf != he {
					return fmt.Errorf("at the basis: weights %x, want %x", hf[:8], he[:8])
				}
				return nil
			})
		}},
		{"exclude", func() error { fused.Exclude(99, nil); eager.Exclude(99, nil); return nil }},
		{"next step's first pass", func() error {
			if _, err := fused.Propose(ctx); err != nil {
				return err
			}
			if len(fused.pending) > 0 {
				return fmt.Errorf("%d updates still pending after the step", len(fused.pending))
			}
			return nil
		}},
	}
	for _, r := range readers {
		step("before " + r.name)
		if err := r.read(); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		same(r.name)
	}
}

// Pending updates that overflow the weights are found by the step that
// applies them: Propose reports ErrOverflow (not a failed step), as it did
// when it applied them first.
func TestPendingOverflowFoundByPropose(t *testing.T) {
	ctx := context.Background()
	m := testRun()
	log, err := store.OpenMemory(m)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	tr, e := newTrainer(t, log, m)
	w := e.Weights()
	for _, tn := range w.Tensors {
		if tn.Trainable {
			for i := range tn.Q {
				tn.Q[i] = math.MaxInt32 - 3
			}
			break
		}
	}
	w.SyncViews()
	us := []zo.Update{{Machine: 20, Sample: 0, Exp: 130, Code: 127}, {Machine: 20, Sample: 1, Exp: 130, Code: -127}}
	if _, err := tr.Take(ctx, nil, us); err != nil {
		t.Fatal(err)
	}
	if err := tr.overflow(); err != nil {
		t.Fatalf("overflow before the updates are applied: %v", err)
	}
	if _, err := tr.Propose(ctx); !errors.Is(err, ErrOverflow) {
		t.Fatalf("Propose: %v, want ErrOverflow", err)
	}
	if len(tr.pending) > 0 || tr.Overflow() == nil {
		t.Fatal("the overflowing updates are not applied")
	}
}
