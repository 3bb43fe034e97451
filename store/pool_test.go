package store

import (
	"context"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// A pool-mode log replays (coefficients summed per pool seed, one apply) to
// the weights of applying its updates one by one, from the base and from a
// checkpoint plus the tail; and a pool-mode run's weights differ from the
// same set's in full mode (the manifest member is not ignored).
func TestPoolReplayEqualsPerUpdate(t *testing.T) {
	ctx := context.Background()
	m := testManifest()
	m.Pool = 16
	s, err := OpenMemory(m, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	engine := func() *zo.Engine { return manifestEngine(t, m) }
	var us []zo.Update
	for mch := range uint64(3) {
		for smp := range uint64(300) {
			us = append(us, upd(mch, smp))
		}
	}
	one := engine()
	for _, u := range us[:600] {
		one.Apply([]zo.Update{u})
	}
	mustAppend(t, s, us[:600]...)
	if _, err := s.WriteCheckpoint(ctx, one.Weights(), mustSummary(us[:600])); err != nil {
		t.Fatal(err)
	}
	for _, u := range us[600:] {
		one.Apply([]zo.Update{u})
	}
	mustAppend(t, s, us[600:]...)
	want := one.Weights().Hash()

	for _, fromBase := range []bool{true, false} {
		e := engine()
		res, err := s.Replay(ctx, e, ReplayOptions{FromBase: fromBase})
		if err != nil {
			t.Fatal(err)
		}
		if res.Hash != want {
			t.Fatalf("fromBase=%v: pool replay hash %x, per-update %x", fromBase, res.Hash[:8], want[:8])
		}
		if fromBase == (res.Checkpoint != 0) || res.Applied != uint64(len(us))-600*uint64(res.Checkpoint) {
			t.Fatalf("fromBase=%v: started from checkpoint %d, applied %d", fromBase, res.Checkpoint, res.Applied)
		}
	}
	if full, _ := independentHash(t, 1, us); full == want {
		t.Fatal("pool mode reached the full-mode weights: the pool is ignored")
	}
}

func mustSummary(us []zo.Update) Summary {
	s := Summary{}
	for _, u := range us {
		s.Add(u.Machine, u.Sample)
	}
	return s
}

// manifestEngine builds an engine on the base weights of testSpecs(1) under m.
func manifestEngine(t testing.TB, m Manifest) *zo.Engine {
	t.Helper()
	w, err := zo.NewWeights(testSpecs(1))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Config()
	if err != nil {
		t.Fatal(err)
	}
	e, err := zo.NewEngine(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
