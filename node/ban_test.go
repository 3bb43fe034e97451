package node

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// TestBansAreOrderFree is the property behind bans (docs/PROTOCOL.md §11.4):
// over random sets of updates of 5 machines, random subsets of 0–3 banned
// machines, random arrival orders and random points at which each ban
// arrives (before, between or after the banned machine's updates, whose later
// ones the log refuses), the weights are bit for bit those of an
// independent replay of the other machines' updates alone, and the set
// digest is theirs plus one exclusion hash per ban.
func TestBansAreOrderFree(t *testing.T) {
	ctx := context.Background()
	m := testRun()
	m.GradBound = 8
	lm, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(17, 17))
	for trial := range 8 {
		var all []zo.Update
		for machine := uint64(1); machine <= 5; machine++ {
			for s := range uint64(5 + r.IntN(20)) {
				exp := uint8(119 + r.IntN(4))
				lim := zo.CodeLimit(exp, m.GradBound)
				all = append(all, zo.Update{Machine: machine, Sample: s, Exp: exp, Code: int8(r.IntN(2*lim+1) - lim)})
			}
		}
		banned := map[uint64]bool{}
		for range r.IntN(4) {
			banned[1+uint64(r.IntN(5))] = true
		}
		var want zo.SetDigest
		var kept []zo.Update
		for _, u := range all {
			if !banned[u.Machine] {
				want.Add(u)
				kept = append(kept, u)
			}
		}
		for b := range banned {
			want.AddHash(zo.ExclusionHash(b))
		}
		ref := newEngine(t, lm, m, "")
		ref.Apply(kept)
		wantHash := ref.Weights().Hash()

		log, err := store.OpenMemory(m)
		if err != nil {
			t.Fatal(err)
		}
		tr, e := newTrainer(t, log, m)
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		// Each ban arrives before update number at[b].
		at := map[uint64]int{}
		for b := range banned {
			at[b] = r.IntN(len(all) + 1)
		}
		ban := func(i int) {
			for b, k := range at {
				if k == i {
					removed, fresh, err := log.Exclude(ctx, b, []byte("accusation"))
					if err != nil || !fresh {
						t.Fatalf("trial %d: ban %d: %v %v", trial, b, fresh, err)
					}
					tr.Exclude(b, removed)
				}
			}
		}
		for i, u := range all {
			ban(i)
			if _, err := tr.Apply(ctx, nil, []zo.Update{u}); err != nil {
				t.Fatal(err)
			}
		}
		ban(len(all))
		if log.Digest() != want {
			t.Fatalf("trial %d (%d bans): digest %s, want %s", trial, len(banned), log.Digest(), want)
		}
		if e.Weights().Hash() != wantHash {
			t.Fatalf("trial %d (%d bans): weights differ from a replay without the banned machines", trial, len(banned))
		}
		for b := range banned {
			res, err := log.Append(ctx, zo.Update{Machine: b, Sample: 999, Exp: 121, Code: 1})
			if err != nil || res.Added != 0 || len(res.Refused) != 1 {
				t.Fatalf("trial %d: a later update of banned machine %d: %+v %v", trial, b, res, err)
			}
		}
		log.Close()
	}
}
