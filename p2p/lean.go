package p2p

import (
	"time"

	"github.com/zopeer/zopeer/zo"
)

// What keeps an idle or steady swarm cheap on the wire (docs/BENCHMARKS.md,
// "Lean wire"): anti-entropy rounds only when announcements disagree with
// our own state (a slow fallback otherwise), no re-fetch of batches gossip
// already delivered that wait for the caller, and a short grace before a
// peer that announces more updates than we hold is chased, so that gossip
// still in the validation queue can land first.

// heard is the newest announcement of one machine.
type heard struct {
	count  uint64
	digest zo.SetDigest
	at     time.Time
}

// noteState records s as machine's newest announcement. p.mu is held.
func (p *Peer) noteStateLocked(s State, now time.Time) {
	p.heardStates[s.Machine] = heard{count: s.Count, digest: s.Digest, at: now}
}

// agreed reports whether every machine heard from recently announced the
// very set this peer holds (and at least one did): then a periodic
// anti-entropy round has nothing to find, bar lost announcements, which the
// slow fallback (maxIdleSync) covers.
func (p *Peer) agreed(now time.Time) bool {
	if p.opts.State == nil {
		return false
	}
	own, ok := p.opts.State()
	if !ok {
		return false
	}
	fresh := (IdleAnnounce + 1) * p.opts.StateInterval
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for m, h := range p.heardStates {
		if now.Sub(h.at) > fresh {
			delete(p.heardStates, m)
			continue
		}
		if m == p.machine {
			continue
		}
		if h.count != own.Count || h.digest != own.Digest {
			return false
		}
		n++
	}
	return n > 0
}

// maxIdleSync bounds, in SyncIntervals, the time between anti-entropy rounds
// while announcements agree with our state.
const maxIdleSync = 32

// inflight is a batch gossip validated and handed to the caller, not
// necessarily stored yet.
type inflight struct {
	machine, lo, hi uint64
	at              time.Time
}

// inflightTTL is how long a delivered batch counts as on its way into the
// log; maxInflight bounds the batches remembered.
const (
	inflightTTL = 30 * time.Second
	maxInflight = 4096
)

// noteInflight remembers a batch gossip delivered (validated, authentic).
func (p *Peer) noteInflight(b *Batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.inflight) >= maxInflight {
		p.inflight = p.inflight[1:]
	}
	p.inflight = append(p.inflight, inflight{machine: b.Machine, lo: b.First, hi: b.Last(), at: time.Now()})
}

// pending returns the samples of batches delivered within inflightTTL, per
// machine: a round does not fetch them again.
func (p *Peer) pending(now time.Time) map[uint64]Ranges {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for i < len(p.inflight) && now.Sub(p.inflight[i].at) > inflightTTL {
		i++
	}
	p.inflight = p.inflight[i:]
	out := map[uint64]Ranges{}
	for _, f := range p.inflight {
		out[f.machine] = out[f.machine].Add(f.lo, f.hi)
	}
	return out
}

// behindGrace is how long a peer waits, after an announcement of more
// updates than it holds, before it starts a round: gossip usually brings
// them meanwhile.
const behindGrace = 2 * time.Second

// chaseLater wakes anti-entropy after behindGrace if the log then still
// holds fewer than count updates. One check is pending at a time.
func (p *Peer) chaseLater(count uint64) {
	if !p.chasing.CompareAndSwap(false, true) {
		return
	}
	p.spawn(func() {
		defer p.chasing.Store(false)
		t := time.NewTimer(behindGrace)
		defer t.Stop()
		select {
		case <-p.stopped:
			return
		case <-t.C:
		}
		if hs, err := p.opts.Log.Holdings(); err != nil || countHeld(hs) < count {
			p.wake()
		}
	})
}
