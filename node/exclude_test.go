package node

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// TestExclusionIsOrderFree: two peers take the same updates of three machines
// and the same exclusion of one of them, in random orders and batchings with
// the exclusion at a random point (before or after some of the machine's
// updates arrive, whose later ones the log refuses). Both end with the same
// set digest and weights hash, equal to an independent replay of the other
// machines' updates alone, and the excluded machine's later update is refused.
func TestExclusionIsOrderFree(t *testing.T) {
	ctx := context.Background()
	m := testRun()
	m.GradBound = 8
	var all []zo.Update
	r := rand.New(rand.NewPCG(9, 9))
	for machine := uint64(1); machine <= 3; machine++ {
		for s := range uint64(40) {
			exp := uint8(121)
			all = append(all, zo.Update{Machine: machine, Sample: s, Exp: exp, Code: int8(r.IntN(2*zo.CodeLimit(exp, 8)+1) - zo.CodeLimit(exp, 8))})
		}
	}
	const bad = 2
	var want zo.SetDigest
	var kept []zo.Update
	for _, u := range all {
		if u.Machine != bad {
			want.Add(u)
			kept = append(kept, u)
		}
	}
	want.AddHash(zo.ExclusionHash(bad))
	lm, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	ref := newEngine(t, lm, m, "")
	ref.Apply(kept)
	wantHash := ref.Weights().Hash()

	for trial := range 6 {
		log, err := store.OpenMemory(m)
		if err != nil {
			t.Fatal(err)
		}
		tr, e := newTrainer(t, log, m)
		us := append([]zo.Update(nil), all...)
		r.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
		at := r.IntN(len(us) + 1)
		for i := 0; i <= len(us); {
			if i == at {
				removed, fresh, err := log.Exclude(ctx, bad, []byte("evidence"))
				if err != nil || !fresh {
					t.Fatalf("exclude: %v %v", fresh, err)
				}
				tr.Exclude(bad, removed)
				at = -1
			}
			if i == len(us) {
				break
			}
			n := min(len(us)-i, 1+r.IntN(9))
			for _, u := range us[i : i+n] { // the node takes one machine's batch at a time
				if _, err := tr.Apply(ctx, nil, []zo.Update{u}); err != nil {
					t.Fatal(err)
				}
			}
			i += n
			if at >= 0 && at < i {
				at = i
			}
		}
		if log.Digest() != want {
			t.Fatalf("trial %d: digest %s, want %s", trial, log.Digest(), want)
		}
		if e.Weights().Hash() != wantHash {
			t.Fatalf("trial %d: weights differ from a replay without the excluded machine", trial)
		}
		res, err := log.Append(ctx, zo.Update{Machine: bad, Sample: 99, Exp: 121, Code: 1})
		if err != nil || res.Added != 0 || len(res.Refused) != 1 {
			t.Fatalf("trial %d: a later update of the excluded machine: %+v %v", trial, res, err)
		}
		log.Close()
	}
}
