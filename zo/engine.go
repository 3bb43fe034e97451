package zo

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Engine applies updates to Weights and runs local SPSA steps under one run's
// Config. The canonical weights change only through Apply, by exact integer
// additions, so they are a pure function of the base weights and the set of
// updates applied. An Engine is not safe for concurrent use.
type Engine struct {
	cfg    Config
	w      *Weights
	epsQ   []int64 // ε on each tensor's grid, in units of the integer-valued z
	stale  bool    // views differ from the canonical weights (after Apply or Step)
}

// maxCoeff bounds one update's step on one tensor's grid, so a hostile or broken
// ĝ cannot overflow the int32 weights in a single update.
const maxCoeff = 1 << 24

// NewEngine checks cfg against w.
func NewEngine(cfg Config, w *Weights) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, w: w, epsQ: make([]int64, len(w.Tensors))}
	for i, t := range w.Tensors {
		if !t.Trainable {
			continue
		}
		q := math.RoundToEven(math.Ldexp(cfg.Eps, t.Exp) / cfg.Dist.sigma())
		if q < 1 || q > maxCoeff {
			return nil, fmt.Errorf("zo: eps %g is off the grid of tensor %q (2^-%d per unit)", cfg.Eps, t.Name, t.Exp)
		}
		e.epsQ[i] = int64(q)
	}
	return e, nil
}

// Config returns the run configuration.
func (e *Engine) Config() Config { return e.cfg }

// Weights returns the weights the engine updates.
func (e *Engine) Weights() *Weights { return e.w }

// SyncViews makes the float32 views canonical again after Apply or Step;
// call it before a forward pass that is not part of Step (evaluation, sampling).
func (e *Engine) SyncViews() {
	if e.stale {
		e.w.syncViews(true)
		e.stale = false
	}
}

// Coeff is the exact integer step of update u on tensor ti, whose seed is s:
// Δ = Coeff·zInt on every element. It is −η·ĝ·2^Exp/σ, stochastically rounded
// with a uniform drawn from (s, ti), so it is unbiased and identical everywhere.
func (e *Engine) Coeff(u Update, s Seed, ti int) int32 {
	t := e.w.Tensors[ti]
	if !t.Trainable {
		return 0
	}
	x := float64(-e.cfg.LR * u.Grad())
	x = math.Ldexp(x, t.Exp) / e.cfg.Dist.sigma()
	fl := math.Floor(x)
	if s.uniform(auxBlockCoeff+uint64(ti)) < x-fl {
		fl++
	}
	return int32(max(-maxCoeff, min(maxCoeff, fl)))
}

// Apply adds every update in us to the weights: θ ← θ − η·ĝ·z(seed) for each,
// in one pass over memory for the whole batch, in parallel over chunks. The
// result does not depend on the order of us, nor on how updates are split
// across calls.
func (e *Engine) Apply(us []Update) {
	if len(us) == 0 {
		return
	}
	seeds := make([]Seed, len(us))
	for k, u := range us {
		seeds[k] = DeriveSeed(e.cfg.Run, u.Machine, u.Sample)
	}
	plans := make([]*applyPlan, len(e.w.Tensors))
	for ti, t := range e.w.Tensors {
		if t.Trainable {
			plans[ti] = newApplyPlan(e, us, seeds, ti)
		}
	}
	e.w.forChunks(true, func(ti int, t *Tensor, lo, hi int) {
		p := plans[ti]
		d := t.Q[lo:hi]
		first := t.Offset + uint64(lo)
		switch {
		case e.cfg.Dist == Gauss4:
			p.applyGauss(d, first)
		case len(us) == 1:
			p.applyOne(d, first)
		default:
			p.applyMany(d, first)
		}
	})
	e.stale = true
}

// applyPlan holds what every chunk of one tensor needs for a batch of updates.
type applyPlan struct {
	seeds []Seed
	c     []int32
	sumC  int32
	// tables[g][b] = Σ 2·c[8g+j] over the set bits j of b: with the bits of
	// eight updates for one element transposed into a byte b, that element
	// moves by sumC − Σ_g tables[g][b_g] (since ±c = c − 2c·bit).
	tables [][256]int32
}

func newApplyPlan(e *Engine, us []Update, seeds []Seed, ti int) *applyPlan {
	p := &applyPlan{seeds: seeds, c: make([]int32, len(us))}
	for k, u := range us {
		p.c[k] = e.Coeff(u, seeds[k], ti)
		p.sumC += p.c[k]
	}
	if len(us) > 1 && e.cfg.Dist == Rademacher {
		p.tables = make([][256]int32, (len(us)+7)/8)
		for g := range p.tables {
			tab := &p.tables[g]
			for b := 1; b < 256; b++ {
				low := b & -b
				j := 8*g + bits.TrailingZeros(uint(low))
				var c2 int32
				if j < len(us) {
					c2 = 2 * p.c[j]
				}
				tab[b] = tab[b&(b-1)] + c2
			}
		}
	}
	return p
}

// addSigns adds ±c to 32 elements: bit j of bits set means −c.
func addSigns(d []int32, bits uint32, c int32) {
	d = d[:32]
	for j := range d {
		m := -int32(bits >> j & 1)
		d[j] += (c ^ m) - m
	}
}

// applyOne is the single-update Rademacher kernel. first is 128-aligned.
func (p *applyPlan) applyOne(d []int32, first uint64) {
	s, c := p.seeds[0], p.c[0]
	b := first / 128
	for base := 0; base < len(d); base, b = base+128, b+1 {
		r0, r1, r2, r3 := philox(uint32(b), uint32(b>>32), s.Stream[0], s.Stream[1], s.Key[0], s.Key[1])
		if base+128 <= len(d) {
			blk := d[base : base+128]
			addSigns(blk[0:32], r0, c)
			addSigns(blk[32:64], r1, c)
			addSigns(blk[64:96], r2, c)
			addSigns(blk[96:128], r3, c)
			continue
		}
		r := [4]uint32{r0, r1, r2, r3}
		for i := base; i < len(d); i++ {
			j := i - base
			m := -int32(r[j>>5] >> (j & 31) & 1)
			d[i] += (c ^ m) - m
		}
	}
}

// applyMany is the batched Rademacher kernel: per block of 128 elements it draws
// every update's 128 bits, transposes them eight updates at a time so that one
// byte holds eight updates' signs for one element, and sums table lookups.
func (p *applyPlan) applyMany(d []int32, first uint64) {
	kp := 8 * len(p.tables)
	rb := make([]byte, 16*kp) // rb[16·0..15][k]: byte j of update k's block
	b := first / 128
	for base := 0; base < len(d); base, b = base+128, b+1 {
		for k, s := range p.seeds {
			r0, r1, r2, r3 := philox(uint32(b), uint32(b>>32), s.Stream[0], s.Stream[1], s.Key[0], s.Key[1])
			for w, r := range [4]uint32{r0, r1, r2, r3} {
				rb[(4*w+0)*kp+k] = byte(r)
				rb[(4*w+1)*kp+k] = byte(r >> 8)
				rb[(4*w+2)*kp+k] = byte(r >> 16)
				rb[(4*w+3)*kp+k] = byte(r >> 24)
			}
		}
		for j := 0; j < 16 && base+8*j < len(d); j++ {
			var acc [8]int32
			row := rb[j*kp : (j+1)*kp]
			for g := range p.tables {
				y := transpose8(binary.LittleEndian.Uint64(row[8*g:]))
				t := &p.tables[g]
				acc[0] += t[byte(y)]
				acc[1] += t[byte(y>>8)]
				acc[2] += t[byte(y>>16)]
				acc[3] += t[byte(y>>24)]
				acc[4] += t[byte(y>>32)]
				acc[5] += t[byte(y>>40)]
				acc[6] += t[byte(y>>48)]
				acc[7] += t[byte(y>>56)]
			}
			at := base + 8*j
			if at+8 <= len(d) {
				e := d[at : at+8]
				for i := range e {
					e[i] += p.sumC - acc[i]
				}
				continue
			}
			for i := at; i < len(d); i++ {
				d[i] += p.sumC - acc[i-at]
			}
		}
	}
}

// transpose8 transposes an 8×8 bit matrix held as eight bytes (row r = byte r,
// column c = bit c): bit c of byte r moves to bit r of byte c.
func transpose8(x uint64) uint64 {
	t := (x ^ (x >> 7)) & 0x00AA00AA00AA00AA
	x ^= t ^ (t << 7)
	t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCC
	x ^= t ^ (t << 14)
	t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0
	x ^= t ^ (t << 28)
	return x
}

// applyGauss adds c·zInt per update; the optional distribution takes the simple path.
func (p *applyPlan) applyGauss(d []int32, first uint64) {
	z := make([]int32, len(d))
	for k, s := range p.seeds {
		Gauss4.Fill(s, first, z)
		c := p.c[k]
		for i := range d {
			d[i] += c * z[i]
		}
	}
}
