package zo

import (
	"fmt"
	"math"
)

// FedKSeed-Pro with candidate slots (docs/PROTOCOL.md §12.1). A pool run
// whose Config.PoolChoices is m gives update (machine, sample) m candidate
// pool seeds, the window k_j = (k_0 + j) mod K for j < m, with k_0 the
// uniform rule's index (PoolIndex). The producer picks one and carries its
// slot j in the update; peers check j < m and use k_j wherever the uniform
// rule used k_0. A machine can put an update on seed k only when k is in its
// window, so its concentration on one seed is bounded by about m·S/K (S its
// sample cap): m times what the uniform rule allows, not K times. With m = K
// the window is the whole pool (full FedKSeed-Pro: for closed runs).
//
// Which slot an honest producer picks (ChooseSlot) is FedKSeed-Pro's rule,
// p_k ∝ exp(normalised mean |ĝ| of seed k), restricted to the candidates; it
// depends on what the producer applied, so peers cannot check it and do not.

// MaxPoolChoices bounds m: a slot is one byte on the wire.
const MaxPoolChoices = 256

// auxBlockPoolChoice is the block of an update's own seed whose uniform
// draws its slot (above every tensor's blocks, distinct from the code's,
// the coefficients' and the estimator's).
const auxBlockPoolChoice = 1<<63 + 1<<60

// candidate is slot j's pool seed for an update whose uniform-rule index is k0.
func candidate(k0 uint32, slot uint8, k uint32) uint32 {
	return uint32((uint64(k0) + uint64(slot)) % uint64(k))
}

// PoolCandidate is pool seed slot j of update (machine, sample) in a run with
// a pool of k seeds and candidate slots: (PoolIndex + j) mod k.
func PoolCandidate(run string, machine, sample uint64, k uint32, slot uint8) uint32 {
	return candidate(PoolIndex(run, machine, sample, k), slot, k)
}

// proObs is what a set of updates says of one pool seed: how many of them
// moved along it and Σ|ĝ| over them.
type proObs struct {
	n   int64
	sum float64
}

// observe records update u on pool seed k (sign −1: its removal).
func (p *PoolSums) observe(k uint32, u Update, sign int32) {
	if p.obs == nil {
		p.obs = make(map[uint32]proObs)
	}
	o := p.obs[k]
	o.n += int64(sign)
	o.sum += float64(sign) * math.Abs(u.Grad())
	p.obs[k] = o
}

func (p *PoolSums) mergeObs(from map[uint32]proObs) {
	for k, o := range from {
		if p.obs == nil {
			p.obs = make(map[uint32]proObs)
		}
		q := p.obs[k]
		q.n += o.n
		q.sum += o.sum
		p.obs[k] = q
	}
}

// proStats are a FedKSeed-Pro engine's per-seed figures over the updates it
// applied (everyone's), what ChooseSlot weighs seeds by. Σ|ĝ| is a float sum
// and so depends on the order of applies in its last bits; that only moves
// this producer's choices, which no peer checks.
type proStats struct {
	n   []int64
	sum []float64
}

func newProStats(k uint32) *proStats {
	return &proStats{n: make([]int64, k), sum: make([]float64, k)}
}

// take folds in what applied (or removed) sums observed; nil-safe.
func (s *proStats) take(obs map[uint32]proObs) {
	if s == nil {
		return
	}
	for k, o := range obs {
		s.n[k] += o.n
		s.sum[k] += o.sum
		if s.n[k] <= 0 {
			s.n[k], s.sum[k] = 0, 0
		}
	}
}

// psi is seed k's mean |ĝ|, or NaN if no applied update used it.
func (s *proStats) psi(k uint32) float64 {
	if s.n[k] == 0 {
		return math.NaN()
	}
	return s.sum[k] / float64(s.n[k])
}

// ChooseSlot is FedKSeed-Pro's slot for update (machine, sample) given the
// updates the engine applied: with ψ_k the mean |ĝ| of the applied updates on
// seed k (a seed none used takes the largest ψ of those used, so every seed
// gets tried; all 0 before any), ψ̃ = (ψ − min ψ)/(max ψ − min ψ) over the
// whole pool (0 when max = min), slot j has weight exp(ψ̃ of its candidate).
// The draw inverts the update's own-seed uniform at a reserved block over the
// cumulative weights in slot order, so a run's choices reproduce exactly.
// It panics outside a FedKSeed-Pro run.
func (e *Engine) ChooseSlot(machine, sample uint64) uint8 {
	c := e.cfg
	if c.PoolChoices == 0 {
		panic("zo: ChooseSlot outside a FedKSeed-Pro run")
	}
	st := e.pro
	lo, hi := math.Inf(1), math.Inf(-1)
	for k := range st.n {
		if v := st.psi(uint32(k)); !math.IsNaN(v) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	sum := updateSeedHash(c.Run, machine, sample)
	k0 := poolIndexOf(sum, c.Pool)
	w := make([]float64, c.PoolChoices)
	var total float64
	for j := range w {
		v := 0.0
		if hi > lo {
			v = st.psi(candidate(k0, uint8(j), c.Pool))
			if math.IsNaN(v) {
				v = hi
			}
			v = (v - lo) / (hi - lo)
		}
		w[j] = math.Exp(v)
		total += w[j]
	}
	x := seedOf(sum[:16]).uniform(auxBlockPoolChoice) * total
	for j, wj := range w {
		if x < wj {
			return uint8(j)
		}
		x -= wj
	}
	return uint8(len(w) - 1) // x rounded up to the total
}

// ProSeedStats are the figures ChooseSlot weighs pool seed k by: how many
// applied updates used it and their mean |ĝ| (NaN if none). For reports and
// tests.
func (e *Engine) ProSeedStats(k uint32) (int64, float64) {
	if e.pro == nil || k >= e.cfg.Pool {
		panic(fmt.Sprintf("zo: ProSeedStats(%d) outside a FedKSeed-Pro run's pool", k))
	}
	return e.pro.n[k], e.pro.psi(k)
}
