package zo

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
)

// Pool mode (docs/PROTOCOL.md §12, FedKSeed): a run whose Config.Pool is K
// perturbs only along K pool seeds fixed by the run. Update (m, s) uses pool
// seed PoolIndex(run, m, s, K) for its z; its coefficients are rounded with
// its own seed's uniforms as in full mode. Then the weights are
// base + Σ_k A_k,t·z_k with A_k,t the exact integer sum of the coefficients
// on tensor t of the updates on seed k: catch-up sums coefficients (cheap) and
// perturbs K times at most, whatever the log's length.

// MaxPool bounds a run's pool size K.
const MaxPool = 1 << 16

// poolDomain separates pool-seed hashes from every other hash zopeer computes.
const poolDomain = "zopeer/pool-seed/v1\x00"

// PoolSeed returns pool seed k of a run: seed bytes 0..15 of
// SHA-256(domain || u32be(len(run)) || run || u32be(k)), read as DeriveSeed reads its.
func PoolSeed(run string, k uint32) Seed {
	h := sha256.New()
	var buf [4]byte
	h.Write([]byte(poolDomain))
	binary.BigEndian.PutUint32(buf[:], uint32(len(run)))
	h.Write(buf[:])
	h.Write([]byte(run))
	binary.BigEndian.PutUint32(buf[:], k)
	h.Write(buf[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return seedOf(sum[:16])
}

// PoolIndex is the pool seed update (machine, sample) of a run with a pool of
// k seeds perturbs along: bytes 16..23 of the hash behind DeriveSeed, read as
// a little-endian uint64, modulo k. The rule is the run's, not the producer's,
// so it needs nothing on the wire and every peer derives it from the update.
func PoolIndex(run string, machine, sample uint64, k uint32) uint32 {
	sum := updateSeedHash(run, machine, sample)
	return poolIndexOf(sum, k)
}

func poolIndexOf(sum [sha256.Size]byte, k uint32) uint32 {
	return uint32(binary.LittleEndian.Uint64(sum[16:24]) % uint64(k))
}

// PerturbSeed is the seed whose z update (machine, sample) moves the weights
// along (and that its two forward passes perturb by): its own seed in full
// mode, its pool seed in pool mode (slot 0 in a FedKSeed-Pro run:
// PerturbSeedOf takes an update's carried slot).
func (c Config) PerturbSeed(machine, sample uint64) Seed {
	return c.PerturbSeedOf(Update{Machine: machine, Sample: sample})
}

// PerturbSeedOf is PerturbSeed of update u, at its carried slot in a
// FedKSeed-Pro run (pro.go).
func (c Config) PerturbSeedOf(u Update) Seed {
	if c.Pool == 0 {
		return DeriveSeed(c.Run, u.Machine, u.Sample)
	}
	return PoolSeed(c.Run, c.poolIndex(updateSeedHash(c.Run, u.Machine, u.Sample), u.Slot))
}

// poolIndex is the pool seed of the update whose seed hash is sum: §12's
// rule, moved by the carried slot in a FedKSeed-Pro run.
func (c Config) poolIndex(sum [sha256.Size]byte, slot uint8) uint32 {
	k := poolIndexOf(sum, c.Pool)
	if c.PoolChoices == 0 {
		return k
	}
	return candidate(k, slot, c.Pool)
}

func (c Config) validatePool() error {
	if c.Pool > MaxPool {
		return fmt.Errorf("zo: config: pool of %d seeds (at most %d)", c.Pool, MaxPool)
	}
	if m := c.PoolChoices; m != 0 && (c.Pool == 0 || m < 2 || m > min(c.Pool, MaxPoolChoices)) {
		return fmt.Errorf("zo: config: %d pool choices with a pool of %d (want 2..min(K, %d))", m, c.Pool, MaxPoolChoices)
	}
	return nil
}

// PoolSums accumulates the exact per-(pool seed, tensor) sums of a set of
// updates' coefficients, for Engine.ApplySums. The sums are int64: each
// coefficient is at most 2^26 in magnitude, so 2^37 updates cannot overflow
// them. Only for pool-mode engines.
type PoolSums struct {
	e    *Engine
	sums map[uint32][]int64 // pool index → per-tensor sum
	n    uint64
	obs  map[uint32]proObs // FedKSeed-Pro runs: what the sums' updates say of each seed
}

// NewPoolSums returns empty sums for e's run, which must be in pool mode.
func (e *Engine) NewPoolSums() *PoolSums {
	if e.cfg.Pool == 0 {
		panic("zo: NewPoolSums on an engine in full mode")
	}
	return &PoolSums{e: e, sums: make(map[uint32][]int64)}
}

// Len is the number of updates added since the sums were last applied.
func (p *PoolSums) Len() uint64 { return p.n }

// Add adds the coefficients of us. Integer sums commute, so the result does
// not depend on the order or the batching of the calls.
func (p *PoolSums) Add(us []Update) { p.add(us, 1) }

// poolGrain is the fewest updates worth a goroutine of their own.
const poolGrain = 256

// add sums sign·Coeff over us, in parallel over slices of us.
func (p *PoolSums) add(us []Update, sign int32) {
	parts := min(runtime.GOMAXPROCS(0), (len(us)+poolGrain-1)/poolGrain)
	if parts <= 1 {
		p.addSerial(us, sign)
		p.n += uint64(len(us))
		return
	}
	partial := make([]*PoolSums, parts)
	var wg sync.WaitGroup
	for i := range partial {
		partial[i] = p.e.NewPoolSums()
		lo, hi := i*len(us)/parts, (i+1)*len(us)/parts
		wg.Go(func() { partial[i].addSerial(us[lo:hi], sign) })
	}
	wg.Wait()
	for _, q := range partial {
		for k, s := range q.sums {
			dst := p.row(k)
			for ti, v := range s {
				dst[ti] += v
			}
		}
		p.mergeObs(q.obs)
	}
	p.n += uint64(len(us))
}

func (p *PoolSums) row(k uint32) []int64 {
	r, ok := p.sums[k]
	if !ok {
		r = make([]int64, len(p.e.w.Tensors))
		p.sums[k] = r
	}
	return r
}

func (p *PoolSums) addSerial(us []Update, sign int32) {
	e := p.e
	for _, u := range us {
		sum := updateSeedHash(e.cfg.Run, u.Machine, u.Sample)
		s := seedOf(sum[:16])
		k := e.cfg.poolIndex(sum, u.Slot)
		r := p.row(k)
		for ti := range e.w.Tensors {
			r[ti] += int64(sign * e.Coeff(u, s, ti))
		}
		if e.pro != nil {
			p.observe(k, u, sign)
		}
	}
}

// ApplySums adds Σ_k A_k,t·z_k to the weights for the sums' pool seeds k, in
// one pass over memory per tensor, and empties the sums. The weights, and
// their overflow verdict (Weights.Overflow), are exactly those of applying
// the summed updates one by one: the same integers are added to every
// element, and wrap counts follow each element's true value.
func (e *Engine) ApplySums(ps *PoolSums) {
	if ps.e != e {
		panic("zo: ApplySums with another engine's sums")
	}
	ks := slices.Sorted(maps.Keys(ps.sums))
	seeds := make([]Seed, len(ks))
	for i, k := range ks {
		seeds[i] = PoolSeed(e.cfg.Run, k)
	}
	plans := make([]*applyPlan, len(e.w.Tensors))
	for ti, t := range e.w.Tensors {
		if !t.Trainable {
			continue
		}
		p := &applyPlan{}
		for i, k := range ks {
			if a := ps.sums[k][ti]; a != 0 {
				p.seeds = append(p.seeds, seeds[i])
				p.add(a, e.cfg.Dist)
			}
		}
		if p.delta > 0 {
			plans[ti] = p
		}
	}
	e.run(plans)
	clear(ps.sums)
	ps.n = 0
	e.pro.take(ps.obs)
	clear(ps.obs)
}
