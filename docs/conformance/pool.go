package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/zo"
)

// poolVectors are the seed-pool vectors of docs/PROTOCOL.md §12: pool seeds,
// the pool index of updates, and pool-mode runs of the engine tensors: each
// update's pool index and coefficients, the per-(pool seed, tensor) sums and
// the weights after applying every update and after removing some.
func poolVectors() (obj, error) {
	var seeds []obj
	for _, c := range []struct {
		run string
		k   uint32
	}{{"", 0}, {run, 0}, {run, 1}, {run, zo.MaxPool - 1}, {"ünïcode", 7}} {
		s := zo.PoolSeed(c.run, c.k)
		seeds = append(seeds, obj{"run": c.run, "k": c.k, "key": s.Key, "stream": s.Stream, "block_0": s.Block(0)})
	}
	var indices []obj
	mP := p2p.MachineOf(pubOf(keyP))
	for _, c := range []struct {
		machine, sample uint64
		pool            uint32
	}{{0, 0, 1}, {mP, 0, 1024}, {mP, 1, 1024}, {1, 2, 3}, {^uint64(0), ^uint64(0), zo.MaxPool}, {mP, 77, 4096}} {
		indices = append(indices, obj{"run": run, "machine": u64(c.machine), "sample": u64(c.sample), "pool": c.pool,
			"index": zo.PoolIndex(run, c.machine, c.sample, c.pool)})
	}
	var candidates []obj
	for _, c := range []struct {
		machine, sample uint64
		pool            uint32
		slot            uint8
	}{{mP, 0, 1024, 0}, {mP, 0, 1024, 255}, {mP, 5, 7, 6}, {^uint64(0), ^uint64(0), zo.MaxPool, 200}, {1, 2, 3, 2}} {
		candidates = append(candidates, obj{"run": run, "machine": u64(c.machine), "sample": u64(c.sample), "pool": c.pool,
			"slot": c.slot, "index": zo.PoolCandidate(run, c.machine, c.sample, c.pool, c.slot)})
	}
	var engines []obj
	for _, cfg := range []zo.Config{
		{Run: run, Dist: zo.Rademacher, Eps: 1e-3, LR: 0.01, Warmup: 4, Pool: 3},
		{Run: run, Dist: zo.Gauss4, Eps: 1e-2, LR: 0.001, Pool: 2},
		{Run: run, Dist: zo.Rademacher, Eps: 1e-3, LR: 0.01, Pool: 5, PoolChoices: 3},
		{Run: run, Dist: zo.Gauss4, Eps: 1e-2, LR: 0.001, Pool: 4, PoolChoices: 4},
	} {
		w, err := zo.NewWeights(engineTensors())
		if err != nil {
			return nil, err
		}
		e, err := zo.NewEngine(cfg, w)
		if err != nil {
			return nil, err
		}
		var us []zo.Update
		for s := range uint64(5) {
			us = append(us, zo.Update{Machine: mP, Sample: s, Exp: 120 + uint8(s%3), Code: int8(37 - 29*int(s))})
			us = append(us, zo.Update{Machine: 9, Sample: 100 + s, Exp: 121, Code: int8(-90 + 41*int(s))})
		}
		if cfg.PoolChoices > 0 { // FedKSeed-Pro (§12.1): slots given, as a producer chose them
			for i := range us {
				us[i].Slotted, us[i].Slot = true, uint8((7*i+3)%int(cfg.PoolChoices))
			}
		}
		var dig zo.SetDigest
		var uo []obj
		sums := map[uint32][]int64{}
		for _, u := range us {
			k := zo.PoolIndex(cfg.Run, u.Machine, u.Sample, cfg.Pool)
			if u.Slotted {
				k = zo.PoolCandidate(cfg.Run, u.Machine, u.Sample, cfg.Pool, u.Slot)
			}
			s := zo.DeriveSeed(cfg.Run, u.Machine, u.Sample)
			var coeffs []int32
			if sums[k] == nil {
				sums[k] = make([]int64, len(w.Tensors))
			}
			for ti := range w.Tensors {
				c := e.Coeff(u, s, ti)
				coeffs = append(coeffs, c)
				sums[k][ti] += int64(c)
			}
			o := obj{"machine": u64(u.Machine), "sample": u64(u.Sample), "exp": u.Exp, "code": u.Code,
				"pool_index": k, "coeffs": coeffs}
			if u.Slotted {
				h := zo.UpdateHash(u)
				o["slot"], o["update_hash"] = u.Slot, hx(h[:])
			}
			dig.Add(u)
			uo = append(uo, o)
		}
		var so []obj
		for _, k := range slices.Sorted(maps.Keys(sums)) {
			var a []string
			for _, v := range sums[k] {
				a = append(a, i64(v))
			}
			so = append(so, obj{"pool_index": k, "sums": a})
		}
		state := func() obj {
			var l []obj
			for _, t := range w.Tensors {
				l = append(l, obj{"q": slices.Clone(t.Q)})
			}
			h := w.Hash()
			return obj{"layout": l, "weights_hash": hx(h[:])}
		}
		e.Apply(us)
		all := state()
		e.Remove(us[:3])
		rest := state()
		eo := obj{
			"run": cfg.Run, "dist": cfg.Dist.String(), "eps": f64(cfg.Eps), "lr": f64(cfg.LR),
			"lr_warmup": u64(cfg.Warmup), "lr_decay": u64(cfg.Decay), "pool": cfg.Pool,
			"tensors": "the engine vectors' tensors", "updates": uo, "sums": so,
			"after_all": all, "after_removing_first_3": rest,
		}
		if cfg.PoolChoices > 0 {
			eo["pool_choices"], eo["set_digest"] = cfg.PoolChoices, dig.String()
		}
		engines = append(engines, eo)
	}
	return obj{"seeds": seeds, "indices": indices, "candidates": candidates, "engine": engines,
		"note": "engine: the model of the engine vectors (same tensors); sums are the exact per-(pool index, tensor) sums of the updates' coefficients, decimal strings; " +
			"candidates and engine runs with pool_choices are FedKSeed-Pro (§12.1): each update's slot is given, its pool index is (PoolIndex + slot) mod K, its digest term v2 (update_hash), set_digest over all the updates"}, nil
}

func i64(v int64) string { return fmt.Sprint(v) }

// snapshotInfoVectors are snapshot info bodies (PROTOCOL-WIRE.md §5.7): a
// valid one over the digest vectors' holdings (machine digests zeroed), and
// invalid ones.
func snapshotInfoVectors(hs []p2p.Holding) ([]obj, error) {
	in := p2p.SnapshotInfo{Hash: sha256.Sum256([]byte("weights")), Size: 4 * 1000, Excluded: []uint64{4, 9}}
	in.Digest[0], in.Digest[31] = 7, 9
	for _, h := range hs {
		h.Digest = 0
		in.Included = append(in.Included, h)
		in.Count += h.Samples.Count()
	}
	good, err := p2p.EncodeSnapshotInfo(in)
	if err != nil {
		return nil, err
	}
	out := []obj{{"body": hx(good), "valid": true, "count": u64(in.Count), "set_digest": hx(in.Digest[:]),
		"weights_hash": hx(in.Hash[:]), "size": u64(in.Size)}}
	patch := func(off int, v uint64) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint64(b[off:], v)
		return b
	}
	withDigest := bytes.Clone(good)
	withDigest[80+1+8+7] = 1 // the first machine's digest, last byte
	for _, bad := range [][]byte{patch(0, in.Count+1), patch(72, 4*1000+2), withDigest, good[:79]} {
		_, err := p2p.DecodeSnapshotInfo(bad)
		out = append(out, obj{"body": hx(bad), "valid": err == nil})
	}
	return out, nil
}
