package store

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// A snapshot (a checkpoint's weights bytes and its set) installed in a
// joiner's store that logged the same updates in another order, plus the
// tail, replays to the weights of a full replay; DigestOf gives the
// snapshot's set digest, and a replay of exactly its set (Only) its hash.
func TestSnapshotPlusTailEqualsFullReplay(t *testing.T) {
	ctx := context.Background()
	for _, pool := range []uint32{0, 8} {
		for round := range 3 {
			rng := rand.New(rand.NewPCG(uint64(round), uint64(pool)))
			m := testManifest()
			m.Pool = pool
			donor, err := OpenMemory(m, WithLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			joiner, err := OpenMemory(m, WithLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			engine := func() *zo.Engine { return manifestEngine(t, m) }
			var all []zo.Update
			for mch := range uint64(4) {
				for smp := range uint64(50 + rng.IntN(100)) {
					all = append(all, upd(mch, smp))
				}
			}
			rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			cut := len(all) / 2
			// The donor holds the first part, applied, and checkpoints it.
			d := engine()
			mustAppend(t, donor, all[:cut]...)
			d.Apply(all[:cut])
			inc := mustSummary(all[:cut])
			ck, err := donor.WriteCheckpoint(ctx, d.Weights(), inc)
			if err != nil {
				t.Fatal(err)
			}
			var want zo.SetDigest
			for _, u := range all[:cut] {
				want.Add(u)
			}
			if got, err := donor.DigestOf(ctx, inc, nil); err != nil || got != want {
				t.Fatalf("DigestOf %v, %v; want %v", got, err, want)
			}
			// Its weights bytes, read in odd-sized pieces.
			var raw []byte
			buf := make([]byte, 1000+rng.IntN(5000))
			for {
				n, err := donor.ReadCheckpointWeights(ck, int64(len(raw)), buf)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				raw = append(raw, buf[:n]...)
			}
			// The joiner logs everything (the snapshot's set and the tail),
			// installs the snapshot as a checkpoint and replays.
			j := engine()
			if len(raw) != 4*elements(j.Weights()) {
				t.Fatalf("snapshot of %d bytes for %d elements", len(raw), elements(j.Weights()))
			}
			for _, tn := range j.Weights().Tensors {
				for i := range tn.Q {
					tn.Q[i] = int32(binary.LittleEndian.Uint32(raw))
					raw = raw[4:]
				}
			}
			j.Weights().SyncViews()
			if j.Weights().Hash() != ck.Hash {
				t.Fatal("the snapshot bytes do not hash to the checkpoint's hash")
			}
			rest := append([]zo.Update(nil), all...)
			rng.Shuffle(len(rest), func(i, k int) { rest[i], rest[k] = rest[k], rest[i] })
			mustAppend(t, joiner, rest...)
			if _, err := joiner.WriteCheckpoint(ctx, j.Weights(), inc); err != nil {
				t.Fatal(err)
			}
			res, err := joiner.Replay(ctx, engine(), ReplayOptions{})
			if err != nil {
				t.Fatal(err)
			}
			full, _ := independentHash(t, 1, all)
			if pool > 0 {
				f := engine()
				f.Apply(all)
				full = f.Weights().Hash()
			}
			if res.Checkpoint == 0 || res.Applied != uint64(len(all)-cut) || res.Hash != full {
				t.Fatalf("pool %d: from checkpoint %d applied %d, hash equal to a full replay: %v", pool, res.Checkpoint, res.Applied, res.Hash == full)
			}
			only, err := joiner.Replay(ctx, engine(), ReplayOptions{FromBase: true, Only: inc})
			if err != nil || only.Hash != ck.Hash || only.Applied != uint64(cut) {
				t.Fatalf("replaying the snapshot's set: %v applied %d, hash equal %v", err, only.Applied, only.Hash == ck.Hash)
			}
			donor.Close()
			joiner.Close()
		}
	}
}

func elements(w *zo.Weights) int {
	n := 0
	for _, t := range w.Tensors {
		n += t.Len()
	}
	return n
}

// A pinned checkpoint (the snapshot a donor serves) survives the checkpoints
// written after it, beyond the number kept, and stays readable; pinning
// another releases it to pruning, and a pruned checkpoint cannot be pinned.
func TestPinnedCheckpointOutlivesPruning(t *testing.T) {
	ctx := context.Background()
	m := testManifest()
	s, err := OpenMemory(m, WithLogger(testLogger(t)), WithKeepCheckpoints(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := manifestEngine(t, m)
	var all []zo.Update
	write := func() CheckpointInfo {
		t.Helper()
		u := upd(1, uint64(len(all)))
		all = append(all, u)
		mustAppend(t, s, u)
		e.Apply([]zo.Update{u})
		ck, err := s.WriteCheckpoint(ctx, e.Weights(), mustSummary(all))
		if err != nil {
			t.Fatal(err)
		}
		return ck
	}
	readable := func(c CheckpointInfo) bool {
		n, err := s.ReadCheckpointWeights(c, 0, make([]byte, 64))
		return err == nil && n == 64
	}
	first := write()
	if err := s.Pin(first); err != nil {
		t.Fatal(err)
	}
	second := write()
	for range 3 {
		write()
	}
	if !readable(first) {
		t.Fatal("the pinned checkpoint was pruned")
	}
	if readable(second) {
		t.Fatal("an unpinned checkpoint beyond the number kept was not pruned")
	}
	if err := s.Pin(second); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("pinning a pruned checkpoint: %v, want ErrNoCheckpoint", err)
	}
	last := write()
	if err := s.Pin(last); err != nil {
		t.Fatal(err)
	}
	if readable(first) {
		t.Fatal("the previously pinned checkpoint was kept after another was pinned")
	}
	cks, err := s.Checkpoints()
	if err != nil || len(cks) != 2 {
		t.Fatalf("%d checkpoints (%v), want the 2 kept", len(cks), err)
	}
}
