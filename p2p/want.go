package p2p

import (
	"context"
	"time"
)

// Wanted ranges: samples the node needs that donors' digests may not list.
// A peer that banned a machine keeps serving the machine's signed batches
// but no longer lists them (PROTOCOL-WIRE.md §6.1), so a peer that holds an
// accusation whose basis names some of them asks every donor for them
// directly, with ordinary fetch requests (§5.3).
const (
	// maxWanted bounds the machines wanted at once; wantTTL is how long a
	// request stands unless renewed.
	maxWanted = 16
	wantTTL   = time.Minute
	// maxWantFetches bounds the fetch requests one round spends on wanted
	// ranges.
	maxWantFetches = 32
)

type want struct {
	rs    Ranges
	until time.Time
}

// Want asks the next anti-entropy rounds to fetch machine's samples rs from
// any donor, whether its digest lists them or not, for wantTTL (renewed by
// asking again), and wakes a round.
func (p *Peer) Want(machine uint64, rs Ranges) {
	if len(rs) == 0 {
		return
	}
	now := time.Now()
	p.mu.Lock()
	w, ok := p.wanted[machine]
	if !ok && len(p.wanted) >= maxWanted {
		for m, old := range p.wanted {
			if now.After(old.until) {
				delete(p.wanted, m)
			}
		}
		if len(p.wanted) >= maxWanted {
			p.mu.Unlock()
			return
		}
	}
	w.rs, w.until = w.rs.Union(rs), now.Add(wantTTL)
	p.wanted[machine] = w
	p.mu.Unlock()
	p.wake()
}

// fetchWanted asks the round's donors for the wanted samples this peer does
// not hold, in chunks of at most MaxFetch samples; what arrives is
// delivered like any fetched batch.
func (p *Peer) fetchWanted(ctx context.Context, donors []*donor) {
	now := time.Now()
	p.mu.Lock()
	todo := make(map[uint64]Ranges, len(p.wanted))
	for m, w := range p.wanted {
		if now.After(w.until) {
			delete(p.wanted, m)
			continue
		}
		todo[m] = w.rs
	}
	p.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	mine, err := p.opts.Log.Holdings()
	if err != nil {
		return
	}
	held := make(map[uint64]Ranges, len(mine))
	for _, h := range mine {
		held[h.Machine] = h.Samples
	}
	fetches := 0
	for m, rs := range todo {
		// An excluded machine is wanted only when a banned machine's batches
		// are missing from an accusation's basis (kept, never logged): the
		// caller asks for exactly what it lacks.
		missing := rs.Sub(held[m])
		for _, d := range donors {
			if d == nil || len(missing) == 0 {
				continue
			}
			for _, r := range missing {
				for lo := r.Lo; lo <= r.Hi && fetches < maxWantFetches && ctx.Err() == nil; {
					hi := min(r.Hi, lo+MaxFetch-1)
					fetches++
					got, err := p.fetch(ctx, d.id, m, lo, hi)
					missing = missing.Sub(got)
					if err != nil || len(got) == 0 || hi == r.Hi {
						break
					}
					lo = hi + 1
				}
			}
		}
	}
}
