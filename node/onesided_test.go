package node

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/zo"
)

// --estimator onesided=Q: the manifest carries it; the trainer's gradients
// are (L(θ+εz) − L0)/ε with L0 one pass at θ on the group's first
// mini-batch (recomputed here from the model and Engine.Step's + pass);
// proposals are deterministic (a second home proposes the same bytes); a
// trained home replays to the same weights, as another home trained alike.
func TestTrainOneSided(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	open := func() *Run {
		s := Defaults
		s.Home = t.TempDir()
		s.Steps, s.Samples, s.BatchSize, s.EvalEvery, s.CkptEvery = 3, 5, 2, 0, 0
		s.Estimator = "onesided=2"
		s, err := s.WithEmbeddedDefault()
		if err != nil {
			t.Fatal(err)
		}
		r, err := OpenRun(ctx, s, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a, b := open(), open()
	if m := a.Log.Manifest(); m.Estimator == nil || m.Estimator.OneSided != 2 {
		t.Fatalf("manifest estimator %+v", m.Estimator)
	}
	tr := a.Trainer
	g, _, err := tr.Gradients(ctx, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	eps := a.Engine.Config().Eps
	for k := range g {
		first := uint64(k / 2 * 2) // groups {0,1}, {2,3}, {4}
		seqs := tr.miniBatch(tr.machine, first)
		a.Engine.SyncViews()
		l0, _, err := a.Model.Loss(seqs)
		if err != nil {
			t.Fatal(err)
		}
		r, err := a.Engine.Step(model.Batch{Model: a.Model, Seqs: seqs}, zo.DeriveSeed(a.Settings.Run, tr.machine, uint64(k)))
		if err != nil {
			t.Fatal(err)
		}
		if want := (r.LossPlus - l0) / eps; g[k] != want {
			t.Errorf("sample %d: ĝ %g, want (L+ − L0)/ε = %g", k, g[k], want)
		}
	}
	if g[0] == g[1] {
		t.Error("two samples of a group have the same ĝ")
	}
	pa, err := a.Trainer.Propose(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Trainer.Propose(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pa.Exp != pb.Exp || !slices.Equal(pa.Codes, pb.Codes) {
		t.Fatalf("two homes propose %d %v and %d %v", pa.Exp, pa.Codes, pb.Exp, pb.Codes)
	}
	for _, r := range []*Run{a, b} {
		if _, _, err := r.Train(ctx); err != nil {
			t.Fatal(err)
		}
		r.Trainer.Flush()
	}
	h := a.Engine.Weights().Hash()
	if b.Engine.Weights().Hash() != h {
		t.Fatal("two homes trained alike hold different weights")
	}
	s := a.Settings
	a.Close()
	again, err := OpenRun(ctx, s, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Engine.Weights().Hash() != h {
		t.Error("the replayed home has other weights")
	}
	if f := again.Trainer.Forwards(5); f != 8 { // 5 + groups {0,1}, {2,3}, {4}
		t.Errorf("%d forward passes for 5 samples, want 8", f)
	}
	if n := again.Log.Stats().Updates; n != 15 {
		t.Errorf("%d updates logged, want 15", n)
	}
	pub := Defaults
	pub.Estimator, pub.PublicData, pub.GradBound = "onesided=4", true, 1
	if _, err := NewManifest(ctx, pub); err == nil || !strings.Contains(err.Error(), "onesided") {
		t.Errorf("a public-data run with onesided: %v", err)
	}
	for _, bad := range []string{"onesided=0", "onesided=x", "onesided=5000"} {
		if _, err := ResolveEstimator(bad, &zo.Weights{}, nil); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
}
