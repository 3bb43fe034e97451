package p2p

import (
	"context"
	"sync"
	"time"
)

// Donors is how many peers could serve an anti-entropy round now: peers
// subscribed to the run's updates topic that speak the sync protocol (a mere
// connection, a DHT neighbour of another run, is not one).
func (p *Peer) Donors() int {
	n := 0
	for _, id := range p.updates.ListPeers() {
		if ps, err := p.host.Peerstore().SupportsProtocols(id, SyncProtocol); err == nil && len(ps) > 0 {
			n++
		}
	}
	return n
}

// Verification is what donors' digests say about the log: how many donors
// answered, and how many samples they hold that the log lacks, in all and of
// one machine.
type Verification struct {
	Asked, Answered int
	Missing         uint64 // samples some answering donor holds and the log lacks
	MissingOf       uint64 // of those, samples of the machine Verify was given
}

// verifyTimeout bounds one donor's digest answer in Verify.
const verifyTimeout = 10 * time.Second

// Verify asks up to SyncDonors donors for their digests and compares them
// with the log, fetching nothing: a caller that has run anti-entropy rounds
// learns whether they left anything behind, and what donors hold of machine
// (its own, say). Unlike an announcement, the answer is backed by batches
// the donors can be asked for.
func (p *Peer) Verify(ctx context.Context, machine uint64) Verification {
	var v Verification
	if !p.enter() {
		return v
	}
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	ctx, stop := p.roundContext(ctx) // Close must not wait on the caller's context
	defer stop()
	ids := p.syncPeers()
	v.Asked = len(ids)
	answers := make([][]Holding, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			hs, _, err := p.fetchDigest(ctx, id)
			if err != nil {
				p.opts.Logger.Debug("p2p: verify digest", "peer", id, "err", err)
				return
			}
			answers[i] = hs
		})
	}
	wg.Wait()
	mine, err := p.opts.Log.Holdings()
	if err != nil {
		v.Answered = 0
		return v
	}
	have := make(map[uint64]Ranges, len(mine))
	for _, h := range mine {
		have[h.Machine] = h.Samples
	}
	missing := map[uint64]Ranges{}
	for _, hs := range answers {
		if hs == nil {
			continue
		}
		v.Answered++
		for _, h := range hs {
			if p.opts.Log.Excluded(h.Machine) {
				continue // a donor that has not seen the evidence yet
			}
			if lack := h.Samples.Sub(have[h.Machine]); len(lack) > 0 {
				missing[h.Machine] = missing[h.Machine].Union(lack)
			}
		}
	}
	for m, rs := range missing {
		n := rs.Count()
		v.Missing += n
		if m == machine {
			v.MissingOf = n
		}
	}
	return v
}
