package p2p

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Anti-entropy. Each round, a peer asks up to SyncDonors connected peers for
// their digests (per-machine sample ranges), computes what it misses, cuts
// that into chunks of at most MaxFetch samples and lets one worker per donor
// pull chunks the donor holds, in parallel. A chunk a donor fails to cover
// goes back for the other donors. Donors send the original signed batches,
// so a donor can withhold updates but never forge one. A joiner runs the same
// rounds; every round starts from what the log holds, so it resumes.

var errBogus = errors.New("p2p: sync: peer broke the protocol")

// wake asks for an anti-entropy round soon.
func (p *Peer) wake() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// syncLoop runs anti-entropy rounds when woken (a joining peer, a peer that
// announced more than we hold or another digest for as many) and on a timer
// that starts at SyncInterval and doubles, up to maxSyncBackoff times it,
// while rounds find nothing to fetch. A timer round is skipped while every
// recent announcement agrees with our state (agreed), up to maxIdleSync
// SyncIntervals after the last round: an idle swarm whose digests agree
// exchanges almost no digests. It exits when life ends.
func (p *Peer) syncLoop(life context.Context) {
	wait := p.opts.SyncInterval
	t := time.NewTimer(wait)
	defer t.Stop()
	last := time.Now()
	for {
		woken := false
		select {
		case <-life.Done():
			return
		case <-t.C:
		case <-p.trigger:
			woken = true
			if !t.Stop() {
				<-t.C
			}
		}
		now := time.Now()
		if !woken && p.agreed(now) && now.Sub(last) < maxIdleSync*p.opts.SyncInterval {
			wait = min(2*wait, maxSyncBackoff*p.opts.SyncInterval)
			t.Reset(wait)
			continue
		}
		last = now
		if p.syncRound(life) || woken {
			wait = p.opts.SyncInterval
		} else {
			wait = min(2*wait, maxSyncBackoff*p.opts.SyncInterval)
		}
		t.Reset(wait)
	}
}

// maxSyncBackoff bounds the idle anti-entropy interval, in SyncIntervals.
const maxSyncBackoff = 8

// SyncNow runs one anti-entropy round and returns when it is over: a joiner
// can call it until it stops making progress. It returns the number of
// updates in the batches delivered meanwhile (rounds of the background loop
// included).
func (p *Peer) SyncNow(ctx context.Context) uint64 {
	if !p.enter() {
		return 0
	}
	defer p.wg.Done()
	// Close must not wait on the caller's context: end the round with it.
	ctx, cancel := p.roundContext(ctx)
	defer cancel()
	before := p.c.syncUpdates.Load()
	p.syncRound(ctx)
	return p.c.syncUpdates.Load() - before
}

// donor is a peer and what it says it holds.
type donor struct {
	id       peer.ID
	holds    map[uint64]Ranges
	digests  map[uint64]uint64 // per-machine digest prefixes (Holding.Digest)
	excluded []uint64
}

// chunk is a piece of missing samples of one machine.
type chunk struct {
	machine uint64
	r       Range
	tried   map[peer.ID]bool
	// only, if set, is the one donor to ask: it holds these samples with
	// values other than ours, and fetching them from it brings the
	// conflicting batch, i.e. the evidence of an equivocation.
	only peer.ID
}

// syncRound reports whether the round planned anything to fetch.
func (p *Peer) syncRound(ctx context.Context) bool {
	// One round at a time: overlapping rounds would fetch the same chunks.
	p.roundMu.Lock()
	defer p.roundMu.Unlock()
	peers := p.syncPeers()
	if len(peers) == 0 {
		return false
	}
	donors := make([]*donor, len(peers))
	var wg sync.WaitGroup
	for i, id := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs, excl, err := p.fetchDigest(ctx, id)
			if err != nil {
				p.opts.Logger.Debug("p2p: sync digest", "peer", id, "err", err)
				return
			}
			d := &donor{id: id, holds: make(map[uint64]Ranges, len(hs)), digests: make(map[uint64]uint64, len(hs)), excluded: excl}
			for _, h := range hs {
				d.holds[h.Machine] = h.Samples
				d.digests[h.Machine] = h.Digest
			}
			donors[i] = d
		}()
	}
	wg.Wait()
	p.fetchEvidence(ctx, donors)
	p.fetchWanted(ctx, donors)
	mine, err := p.opts.Log.Holdings()
	if err != nil {
		p.opts.Logger.Warn("p2p: sync: log holdings", "err", err)
		return false
	}
	q := &workQueue{chunks: plan(mine, p.pending(time.Now()), donors, p.opts.Log.Excluded, maxChunks)}
	if len(q.chunks) == 0 {
		return false
	}
	for _, d := range donors {
		if d == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.pullFrom(ctx, d, q)
		}()
	}
	wg.Wait()
	return true
}

// syncPeers picks up to SyncDonors random peers of this run (subscribed to
// its updates topic: DHT neighbours may belong to other runs) that speak the
// sync protocol.
func (p *Peer) syncPeers() []peer.ID {
	var ids []peer.ID
	for _, id := range p.updates.ListPeers() {
		if ps, err := p.host.Peerstore().SupportsProtocols(id, SyncProtocol); err == nil && len(ps) > 0 {
			ids = append(ids, id)
		}
	}
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids[:min(len(ids), p.opts.SyncDonors)]
}

// maxChunks bounds the work of one round (4M updates): a joiner runs rounds
// back to back, and no digest can make a round unbounded.
const maxChunks = 1024

// plan lists what the donors hold and mine lacks, in at most limit chunks of
// at most MaxFetch samples each, lowest machines and samples first, leaving
// out excluded machines and the samples pending (delivered by gossip, on
// their way into the log). A donor that holds exactly a machine's samples we
// hold but with another digest holds some of them with other values: those
// samples are planned again, from that donor only, so the conflict surfaces.
func plan(mine []Holding, pending map[uint64]Ranges, donors []*donor, excluded func(uint64) bool, limit int) []*chunk {
	have := make(map[uint64]Ranges, len(mine))
	digest := make(map[uint64]uint64, len(mine))
	for _, h := range mine {
		have[h.Machine], digest[h.Machine] = h.Samples, h.Digest
	}
	missing := map[uint64]Ranges{}
	type split struct {
		machine uint64
		donor   peer.ID
	}
	var splits []split
	for _, d := range donors {
		if d == nil {
			continue
		}
		for m, rs := range d.holds {
			if excluded(m) {
				continue
			}
			lack := rs.Sub(have[m])
			if len(lack) > 0 {
				if lack = lack.Sub(pending[m]); len(lack) > 0 {
					missing[m] = missing[m].Union(lack)
				}
			} else if d.digests[m] != digest[m] && slices.Equal(rs, have[m]) {
				splits = append(splits, split{m, d.id})
			}
		}
	}
	var out []*chunk
	add := func(m uint64, rs Ranges, only peer.ID) {
		for _, r := range rs {
			for lo := r.Lo; len(out) < limit; lo += MaxFetch {
				hi := min(r.Hi, lo+MaxFetch-1)
				if hi < lo { // lo+MaxFetch-1 overflowed
					hi = r.Hi
				}
				out = append(out, &chunk{machine: m, r: Range{lo, hi}, tried: map[peer.ID]bool{}, only: only})
				if hi == r.Hi {
					break
				}
			}
		}
	}
	for _, m := range slices.Sorted(maps.Keys(missing)) {
		add(m, missing[m], "")
	}
	slices.SortFunc(splits, func(a, b split) int { return cmp.Compare(a.machine, b.machine) })
	for _, s := range splits {
		add(s.machine, have[s.machine], s.donor)
	}
	return out
}

// workQueue hands chunks to donor workers.
type workQueue struct {
	mu     sync.Mutex
	chunks []*chunk
}

// take removes and returns the first chunk d holds part of and has not tried.
func (q *workQueue) take(d *donor) (*chunk, Range, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, c := range q.chunks {
		if c.tried[d.id] || c.only != "" && c.only != d.id {
			continue
		}
		part, ok := d.holds[c.machine].Hull(c.r.Lo, c.r.Hi)
		if !ok {
			continue
		}
		q.chunks = append(q.chunks[:i], q.chunks[i+1:]...)
		return c, part, true
	}
	return nil, Range{}, false
}

func (q *workQueue) put(c *chunk) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.chunks = append(q.chunks, c)
}

// pullFrom fetches chunks from d until none is left that d can help with or
// d misbehaves.
func (p *Peer) pullFrom(ctx context.Context, d *donor, q *workQueue) {
	for ctx.Err() == nil {
		c, want, ok := q.take(d)
		if !ok {
			return
		}
		got, err := p.fetch(ctx, d.id, c.machine, want.Lo, want.Hi)
		// What is left goes back for the other donors.
		for _, r := range (Ranges{c.r}).Sub(got) {
			tried := maps.Clone(c.tried)
			tried[d.id] = true
			q.put(&chunk{machine: c.machine, r: r, tried: tried})
		}
		if err != nil {
			p.opts.Logger.Debug("p2p: sync fetch", "peer", d.id, "err", err)
			return
		}
		if len(got) == 0 {
			// It claimed samples it did not send: ask it nothing more this
			// round, or a lying digest would cost us a request per chunk.
			return
		}
	}
}

// syncStream opens a sync stream to id with the round's deadline.
func (p *Peer) syncStream(ctx context.Context, id peer.ID, q SyncRequest) (network.Stream, *bufio.Reader, error) {
	s, err := p.host.NewStream(network.WithNoDial(ctx, "sync"), id, protocol.ID(SyncProtocol))
	if err != nil {
		return nil, nil, fmt.Errorf("p2p: sync stream: %w", err)
	}
	if err := s.SetDeadline(time.Now().Add(p.opts.SyncTimeout)); err != nil {
		s.Reset()
		return nil, nil, fmt.Errorf("p2p: sync deadline: %w", err)
	}
	if err := writeFrame(s, encodeRequest(p.run, q)); err != nil {
		s.Reset()
		return nil, nil, fmt.Errorf("p2p: sync request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, nil, fmt.Errorf("p2p: sync request: %w", err)
	}
	return s, bufio.NewReader(s), nil
}

func (p *Peer) fetchDigest(ctx context.Context, id peer.ID) ([]Holding, []uint64, error) {
	s, r, err := p.syncStream(ctx, id, SyncRequest{Kind: kindDigest})
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	body, err := readFrame(r, MaxDigestSize)
	if err != nil {
		p.countViolation(err)
		s.Reset()
		return nil, nil, err
	}
	hs, excl, err := decodeDigest(body)
	if err != nil {
		p.c.syncRejected.Add(1)
		s.Reset()
		return nil, nil, err
	}
	return hs, excl, nil
}

// maxEvidenceFetches bounds the evidence one round asks donors for.
const maxEvidenceFetches = 64

// fetchEvidence asks donors for the evidence against machines they excluded
// and we did not, and delivers what verifies. A donor that lists a machine
// without convincing evidence is asked nothing more this round.
func (p *Peer) fetchEvidence(ctx context.Context, donors []*donor) {
	asked := map[uint64]bool{}
	for _, d := range donors {
		if d == nil {
			continue
		}
		for _, m := range d.excluded {
			if len(asked) >= maxEvidenceFetches || ctx.Err() != nil {
				return
			}
			if asked[m] || p.opts.Log.Excluded(m) {
				continue
			}
			asked[m] = true
			ev, err := p.fetchEvidenceFrom(ctx, d.id, m)
			if err != nil {
				p.opts.Logger.Debug("p2p: sync evidence", "peer", d.id, "machine", machineHex(m), "err", err)
				break
			}
			if ev.IsAccusation() && p.accuserIgnored(ev.Accuser) {
				continue // its accuser's accusations no longer hold up here
			}
			select {
			case p.evidence <- ev:
				p.c.evidence.Add(1)
			case <-ctx.Done():
				return
			}
		}
	}
}

func (p *Peer) fetchEvidenceFrom(ctx context.Context, id peer.ID, machine uint64) (*Evidence, error) {
	s, r, err := p.syncStream(ctx, id, SyncRequest{Kind: kindEvidence, Machine: machine})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	body, err := readFrame(r, MaxEvidenceSize)
	if err != nil {
		p.countViolation(err)
		s.Reset()
		return nil, err
	}
	ev, err := DecodeEvidence(body, p.run)
	if err == nil && ev.Machine != machine {
		err = fmt.Errorf("%w: evidence against another machine", errBogus)
	}
	if err != nil {
		p.c.syncRejected.Add(1)
		s.Reset()
		return nil, err
	}
	return ev, nil
}

// FetchManifest asks the connected peers for the run manifest (Options.Manifest)
// until some answer or ctx ends. The answer is trusted on first contact, like
// the bootstrap addresses, but every peer that answers must give the same bytes.
func (p *Peer) FetchManifest(ctx context.Context) ([]byte, error) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		var (
			mu   sync.Mutex
			got  [][]byte
			from []peer.ID
			wg   sync.WaitGroup
		)
		for _, id := range p.syncPeers() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := p.fetchManifest(ctx, id)
				if err != nil || len(m) == 0 {
					return
				}
				mu.Lock()
				got, from = append(got, m), append(from, id)
				mu.Unlock()
			}()
		}
		wg.Wait()
		for i := range got {
			if !bytes.Equal(got[i], got[0]) {
				return nil, fmt.Errorf("p2p: peers %s and %s serve different manifests", from[0], from[i])
			}
		}
		if len(got) > 0 {
			return got[0], nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("p2p: fetch manifest: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func (p *Peer) fetchManifest(ctx context.Context, id peer.ID) ([]byte, error) {
	s, r, err := p.syncStream(ctx, id, SyncRequest{Kind: kindManifest})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	m, err := readFrame(r, MaxManifestSize)
	if err != nil {
		p.countViolation(err)
		s.Reset()
	}
	return m, err
}

// fetch asks id for machine's samples [lo, hi] and delivers what is new. It
// returns the samples covered by authentic batches received. Every batch is
// decoded and verified as gossip is; a batch that is forged, from another run
// or machine, outside the range, or over the response limit ends the stream.
func (p *Peer) fetch(ctx context.Context, id peer.ID, machine, lo, hi uint64) (Ranges, error) {
	s, r, err := p.syncStream(ctx, id, SyncRequest{Kind: kindFetch, Machine: machine, Lo: lo, Hi: hi})
	if err != nil {
		return nil, err
	}
	var got Ranges
	total := 0
	for {
		frame, err := readFrame(r, MaxBatchSize)
		if err != nil {
			p.countViolation(err)
			s.Reset()
			return got, err
		}
		if len(frame) == 0 {
			s.Close()
			return got, nil
		}
		b, err := p.admitBatch(frame)
		if err == nil && (b.Machine != machine || b.Last() < lo || b.First > hi) {
			err = fmt.Errorf("%w: batch outside the request", errBogus)
		}
		if err == nil {
			total += len(b.Codes)
		}
		if err == nil && total > MaxFetch+MaxBatchCount {
			err = fmt.Errorf("%w: response too large", errBogus)
		}
		if err != nil {
			p.c.syncRejected.Add(1)
			s.Reset()
			return got, err
		}
		switch p.judge(b, id) {
		case fresh:
			if !p.deliver(ctx, b) {
				s.Reset()
				return got, ctx.Err()
			}
			p.c.fetched.Add(1)
			p.c.syncUpdates.Add(uint64(len(b.Codes)))
		case unknown:
			s.Reset()
			return got, fmt.Errorf("p2p: sync: log lookup failed")
		}
		got = got.Add(max(b.First, lo), min(b.Last(), hi))
	}
}

// countViolation counts a response error that is the donor's fault, as
// opposed to the network's.
func (p *Peer) countViolation(err error) {
	if errors.Is(err, ErrMalformed) {
		p.c.syncRejected.Add(1)
	}
}

// serveSync answers one request on an inbound sync stream. Concurrent streams
// are capped, in all and per peer; each has SyncTimeout to finish.
func (p *Peer) serveSync(s network.Stream) {
	if !p.enter() {
		s.Reset()
		return
	}
	defer p.wg.Done()
	if !p.admit(s.Conn().RemotePeer()) {
		p.c.busy.Add(1)
		s.Reset()
		return
	}
	defer p.release(s.Conn().RemotePeer())
	if err := p.answer(s); err != nil {
		p.opts.Logger.Debug("p2p: sync serve", "peer", s.Conn().RemotePeer(), "err", err)
		s.Reset()
		return
	}
	p.c.served.Add(1)
	s.Close()
}

// perPeerInbound caps the sync streams one peer may have served at once, so
// no single peer can occupy all SyncInbound slots.
const perPeerInbound = 4

func (p *Peer) admit(id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.serving[id] >= perPeerInbound {
		return false
	}
	select {
	case p.inbound <- struct{}{}:
	default:
		return false
	}
	p.serving[id]++
	return true
}

func (p *Peer) release(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	<-p.inbound
	if p.serving[id]--; p.serving[id] == 0 {
		delete(p.serving, id)
	}
}

func (p *Peer) answer(s network.Stream) error {
	if err := s.SetDeadline(time.Now().Add(p.opts.SyncTimeout)); err != nil {
		return err
	}
	body, err := readFrame(bufio.NewReader(io.LimitReader(s, maxRequestSize+binary.MaxVarintLen64)), maxRequestSize)
	if err != nil {
		return err
	}
	q, err := decodeRequest(body, p.run)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(s)
	switch q.Kind {
	case kindDigest:
		hs, err := p.opts.Log.Holdings()
		if err != nil {
			return fmt.Errorf("p2p: sync: log holdings: %w", err)
		}
		if err := writeFrame(w, encodeDigest(hs, p.opts.Log.Exclusions(), MaxDigestSize)); err != nil {
			return err
		}
	case kindFetch:
		raws, err := p.opts.Log.Batches(q.Machine, q.Lo, q.Hi, MaxFetch)
		if err != nil {
			return fmt.Errorf("p2p: sync: log batches: %w", err)
		}
		sent := 0
		for _, raw := range raws {
			if sent >= MaxFetch {
				break // the requester asks again for the rest
			}
			sent += peekCount(raw)
			if err := writeFrame(w, raw); err != nil {
				return err
			}
		}
		if err := writeFrame(w, nil); err != nil {
			return err
		}
	case kindManifest:
		if err := writeFrame(w, p.opts.Manifest); err != nil {
			return err
		}
	case kindEvidence:
		ev, _ := p.opts.Log.Evidence(q.Machine)
		if err := writeFrame(w, ev); err != nil {
			return err
		}
	case kindSnapInfo, kindSnapData:
		if err := p.answerSnapshot(w, q); err != nil {
			return err
		}
	}
	return w.Flush()
}

// peekCount reads a stored batch's update count without verifying it; the
// donor only uses it to size a response.
func peekCount(raw []byte) int {
	if len(raw) < batchFixed {
		return MaxBatchCount
	}
	_, rest, err := uvarint(raw[41:])
	if err != nil {
		return MaxBatchCount
	}
	n, _, err := uvarint(rest)
	if err != nil || n > MaxBatchCount {
		return MaxBatchCount
	}
	return int(n)
}
