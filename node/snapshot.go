package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// Snapshot sync (docs/DESIGN.md, "Joining by snapshot"; wire:
// PROTOCOL-WIRE.md §5.7). A donor serves the checkpoint it wrote when its
// (set digest, weights hash) pair matched another peer's announcement: a
// state others reached too. A joiner started with --snapshot-quorum N and an
// empty log logs what arrives without applying it, waits until N machines
// attest one same pair (announcing it, or serving it: a donor's info counts,
// because donors that train on serve a state they have moved past), fetches
// that pair's snapshot from the donors that serve exactly it (a donor
// serving another hash for the same digest, or the same hash for another
// digest, is refused), checks the weights hash
// locally, lets anti-entropy fetch the snapshot's updates (a few bytes each)
// and checks their set digest, then installs the weights as a checkpoint and
// replays only the tail. Any failure falls back to the full replay.

// SnapshotStatus is the status's view of a snapshot join.
type SnapshotStatus struct {
	// State: waiting_quorum, fetching, fetching_updates, installed, or
	// fallback (a full replay: the reason is in Error).
	State   string   `json:"state"`
	Votes   int      `json:"votes"`            // machines attesting the pair chosen (announcing or serving it)
	Donors  []string `json:"donors,omitempty"` // peers the weights came from
	Refused []string `json:"refused_donors"`   // peers whose snapshot disagreed with the majority's pair
	Updates uint64   `json:"updates"`          // updates the snapshot includes
	Hash    string   `json:"weights_hash,omitempty"`
	Seconds float64  `json:"seconds"` // from start to installed
	Error   string   `json:"error,omitempty"`
	// Verify is the background check by full replay of the snapshot's set
	// (--snapshot-verify): replaying, verified, or mismatch / error: ….
	Verify string `json:"verify,omitempty"`
}

// servedSnapshot is the checkpoint a donor serves and how it describes it.
type servedSnapshot struct {
	ck   store.CheckpointInfo
	info p2p.SnapshotInfo
	real [32]byte // the checkpoint's own hash (info.Hash differs only under --test-snapshot-lie)
}

// snapshotSource serves the daemon's agreed checkpoint to p2p.
type snapshotSource struct{ d *Daemon }

func (s snapshotSource) Snapshot() (p2p.SnapshotInfo, bool) {
	sv := s.d.served.Load()
	if sv == nil {
		return p2p.SnapshotInfo{}, false
	}
	return sv.info, true
}

func (s snapshotSource) ReadSnapshot(h [32]byte, off uint64, b []byte) (int, error) {
	sv := s.d.served.Load()
	if sv == nil || h != sv.info.Hash || off > 1<<62 {
		return 0, nil
	}
	n, err := s.d.run.Log.ReadCheckpointWeights(sv.ck, int64(off), b)
	if n > 0 && (sv.real != sv.info.Hash && off == 0 || s.d.ps.SnapshotCorrupt) {
		b[0] ^= 1 // --test-snapshot-lie, --test-snapshot-corrupt: bytes that are not the checkpoint's
	}
	return n, err
}

// agreedEvery bounds how often a donor writes an agreed checkpoint (each
// writes the whole model).
func (d *Daemon) agreedEvery() time.Duration { return max(time.Minute, 30*d.ps.StateEvery) }

// noteAgreed runs in the loop when a peer announced our exact pair: the
// state is one others reached, so a checkpoint of it can be verified by a
// quorum of announcements; it becomes the snapshot this peer serves.
func (d *Daemon) noteAgreed(ctx context.Context) {
	if d.run.Trainer.Held() || d.agreedAt == d.hashAt || !d.lastAgreed.IsZero() && time.Since(d.lastAgreed) < d.agreedEvery() {
		return
	}
	if d.run.Log.Digest() != d.hashAt {
		return // updates arrived since the pair was computed: wait for the next agreement
	}
	d.mu.Lock()
	ours := d.snap.WeightsHash
	d.mu.Unlock()
	ck, err := d.run.Trainer.Checkpoint(ctx)
	if err != nil {
		d.log.Warn("agreed checkpoint not written", "err", err)
		return
	}
	if fmt.Sprintf("%x", ck.Hash) != ours {
		return
	}
	// A donor that trains on writes checkpoints and prunes old ones: the one
	// it serves must outlive them while joiners fetch it.
	if err := d.run.Log.Pin(ck); err != nil {
		d.log.Warn("agreed checkpoint not served", "err", err)
		return
	}
	d.agreedAt, d.lastAgreed = d.hashAt, time.Now()
	sv := &servedSnapshot{ck: ck, real: ck.Hash}
	sv.info = p2p.SnapshotInfo{Count: ck.Updates, Digest: d.hashAt, Hash: ck.Hash, Size: 4 * uint64(elems(d.run.Engine.Weights())),
		Included: holdings(ck.Included)}
	for _, e := range d.run.Log.Exclusions() {
		sv.info.Excluded = append(sv.info.Excluded, e.Machine)
	}
	if d.ps.SnapshotLie {
		sv.info.Hash = sha256.Sum256(ck.Hash[:])
	}
	d.served.Store(sv)
	d.log.Info("serving an agreed snapshot", "checkpoint", ck.ID, "updates", ck.Updates)
}

func elems(w *zo.Weights) int {
	n := 0
	for _, t := range w.Tensors {
		n += t.Len()
	}
	return n
}

// holdings turns a summary into p2p holdings, by machine (digests left 0).
func holdings(s store.Summary) []p2p.Holding {
	out := make([]p2p.Holding, 0, len(s))
	for _, m := range slices.Sorted(maps.Keys(s)) {
		h := p2p.Holding{Machine: m}
		for _, r := range s[m] {
			h.Samples = append(h.Samples, p2p.Range{Lo: r.First, Hi: r.Last})
		}
		out = append(out, h)
	}
	return out
}

func summaryOf(hs []p2p.Holding) store.Summary {
	s := store.Summary{}
	for _, h := range hs {
		for _, r := range h.Samples {
			s[h.Machine] = append(s[h.Machine], store.Range{First: r.Lo, Last: r.Hi})
		}
	}
	return s
}

// installReq asks the loop to install a verified snapshot (raw != nil) or,
// with raw nil, to give up on it and rebuild from the log.
type installReq struct {
	raw      []byte
	included store.Summary
	done     chan error
}

// install runs in the loop: it ends the hold on the trainer either way.
func (d *Daemon) install(ctx context.Context, req installReq) {
	var res store.ReplayResult
	var err error
	if req.raw != nil {
		res, err = d.run.Trainer.Install(ctx, req.raw, req.included)
	} else {
		res, err = d.run.Trainer.Release(ctx)
	}
	if err == nil {
		d.log.Info("weights rebuilt", "from_checkpoint", res.Checkpoint, "tail_applied", res.Applied, "weights_hash", fmt.Sprintf("%x", res.Hash[:8]))
		d.hashNow()
	}
	req.done <- err
}

// snapshotWait bounds how long a joiner waits for a quorum and a donor.
func (d *Daemon) snapshotWait() time.Duration { return max(30*time.Second, 10*d.ps.StateEvery) }

// snapshotJoin runs once, in the catch-up goroutine, when the trainer is
// held: it installs a verified snapshot, or falls back to the full replay.
// Either way the trainer is released before it returns (unless ctx ends).
func (d *Daemon) snapshotJoin(ctx context.Context) {
	start := time.Now()
	st := &SnapshotStatus{State: "waiting_quorum", Refused: []string{}}
	set := func(f func(*SnapshotStatus)) {
		f(st)
		c := *st
		c.Refused = slices.Clone(st.Refused)
		d.snapshot(func(s *Status) { s.Snapshot = &c })
	}
	set(func(*SnapshotStatus) {})
	raw, in, err := d.fetchSnapshot(ctx, set)
	req := installReq{done: make(chan error, 1)}
	if err == nil {
		req.raw, req.included = raw, summaryOf(in.Included)
	} else {
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("snapshot join failed: rebuilding from the log instead", "err", err)
		set(func(s *SnapshotStatus) { s.State, s.Error = "fallback", err.Error() })
	}
	select {
	case d.installC <- req:
	case <-ctx.Done():
		return
	}
	select {
	case err = <-req.done:
	case <-ctx.Done():
		return
	}
	if err != nil {
		set(func(s *SnapshotStatus) { s.State, s.Error = "fallback", err.Error() })
		return // the loop failed: it ends the daemon with the error
	}
	if req.raw == nil {
		return
	}
	set(func(s *SnapshotStatus) { s.State, s.Seconds = "installed", time.Since(start).Seconds() })
	d.log.Info("joined by snapshot", "updates", in.Count, "seconds", fmt.Sprintf("%.2f", time.Since(start).Seconds()))
	if d.ps.SnapshotVerify {
		set(func(s *SnapshotStatus) { s.Verify = "replaying" })
		select { // the verifier goroutine has room for one request: this is the only one
		case d.verifyC <- verifyReq{included: req.included, hash: in.Hash, report: func(v string) { set(func(s *SnapshotStatus) { s.Verify = v }) }}:
		default:
		}
	}
}

// fetchSnapshot waits for a quorum, fetches and checks the snapshot.
func (d *Daemon) fetchSnapshot(ctx context.Context, set func(func(*SnapshotStatus))) ([]byte, p2p.SnapshotInfo, error) {
	deadline := time.Now().Add(d.snapshotWait())
	refused := map[peer.ID]bool{}
	// A fetch that fails (a donor left, moved to a newer snapshot, or was
	// busy, or sent bytes that are not the snapshot) resumes with the donors
	// of the moment until the deadline, keeping the chunks it has while the
	// pair stays the same.
	var f *snapFetch
	var fetchErr error
	for ctx.Err() == nil {
		if time.Now().After(deadline) {
			if fetchErr != nil {
				return nil, p2p.SnapshotInfo{}, fmt.Errorf("node: snapshot: no donor sent it in time: %w", fetchErr)
			}
			return nil, p2p.SnapshotInfo{}, errors.New("node: snapshot: no quorum of attestations with a donor serving it in time")
		}
		offers := d.peer.SnapshotOffers(ctx)
		best, votes := tally(d.attestations(offers, refused))
		dig, hash := best.dig, best.hash
		set(func(s *SnapshotStatus) { s.Votes = votes })
		if votes < d.ps.SnapshotQuorum {
			sleepCtx(ctx, 500*time.Millisecond)
			continue
		}
		refuse := func(id peer.ID, why string) {
			refused[id] = true
			d.log.Warn("refusing a snapshot donor: "+why, "peer", id, "votes", votes)
			set(func(s *SnapshotStatus) { s.Refused = append(s.Refused, id.String()) })
		}
		var from []peer.ID
		var in p2p.SnapshotInfo
		for _, o := range offers {
			switch {
			case refused[o.From]:
			case o.Info.Digest == dig && o.Info.Hash == hash:
				from, in = append(from, o.From), o.Info
			case o.Info.Digest == dig || o.Info.Hash == hash:
				refuse(o.From, "its (set digest, weights hash) disagrees with the majority's")
			}
		}
		if len(from) == 0 {
			sleepCtx(ctx, 500*time.Millisecond)
			continue
		}
		w := d.run.Engine.Weights() // the layout only: names, shapes and exponents do not change
		if in.Size != 4*uint64(elems(w)) {
			return nil, in, fmt.Errorf("node: snapshot of %d bytes for a layout of %d", in.Size, 4*elems(w))
		}
		set(func(s *SnapshotStatus) { s.State, s.Updates, s.Hash = "fetching", in.Count, fmt.Sprintf("%x", in.Hash) })
		if f == nil || f.hash != in.Hash {
			f = newSnapFetch(in.Hash, in.Size)
		}
		used, bad, err := f.fetch(ctx, d.peer, from, w.HashOf)
		for _, id := range bad {
			refuse(id, "its weights bytes do not hash to the pair's weights hash")
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			fetchErr = err
			d.log.Debug("snapshot fetch failed: asking again", "err", err, "donors", len(from))
			sleepCtx(ctx, 500*time.Millisecond)
			continue
		}
		set(func(s *SnapshotStatus) {
			s.State = "fetching_updates"
			for _, id := range used {
				s.Donors = append(s.Donors, id.String())
			}
		})
		if err := d.awaitLogged(ctx, summaryOf(in.Included), deadline); err != nil {
			return nil, in, err
		}
		got, err := d.run.Log.DigestOf(ctx, summaryOf(in.Included), in.Excluded)
		if err != nil {
			return nil, in, err
		}
		if got != in.Digest {
			return nil, in, fmt.Errorf("node: the snapshot's updates have set digest %s, announced %s", got, in.Digest)
		}
		return f.raw, in, nil
	}
	return nil, p2p.SnapshotInfo{}, ctx.Err()
}

// snapshotFetcher is what a snapshot fetch needs of p2p.
type snapshotFetcher interface {
	FetchSnapshot(ctx context.Context, from []peer.ID, hash [32]byte, dst []byte, by []peer.ID) error
}

// snapFetch is one snapshot's bytes being fetched, and who sent each chunk.
type snapFetch struct {
	hash [32]byte
	raw  []byte
	by   []peer.ID
}

func newSnapFetch(hash [32]byte, size uint64) *snapFetch {
	return &snapFetch{hash: hash, raw: make([]byte, size), by: make([]peer.ID, (size+p2p.MaxSnapshotChunk-1)/p2p.MaxSnapshotChunk)}
}

// fetch completes the bytes from the donors in from, in parallel, and checks
// them against the weights hash. If they do not hash right, some donor sent
// bytes that are not the snapshot, and the one hash cannot say whose: it
// then takes the whole snapshot from one donor at a time, in order, and a
// donor whose own bytes do not hash right is bad (a donor that fails to
// send is only skipped). used are the donors the accepted bytes came from.
// On an error the chunks held are kept for the next call unless they are
// known wrong.
func (f *snapFetch) fetch(ctx context.Context, p snapshotFetcher, from []peer.ID, hashOf func([]byte) ([32]byte, error)) (used, bad []peer.ID, err error) {
	if err := p.FetchSnapshot(ctx, from, f.hash, f.raw, f.by); err != nil {
		return nil, nil, err
	}
	if h, err := hashOf(f.raw); err == nil && h == f.hash {
		for _, id := range f.by {
			if !slices.Contains(used, id) {
				used = append(used, id)
			}
		}
		return used, nil, nil
	}
	for _, id := range from {
		clear(f.by)
		if err := p.FetchSnapshot(ctx, []peer.ID{id}, f.hash, f.raw, f.by); err != nil {
			if ctx.Err() != nil {
				return nil, bad, ctx.Err()
			}
			continue
		}
		if h, err := hashOf(f.raw); err == nil && h == f.hash {
			return []peer.ID{id}, bad, nil
		}
		bad = append(bad, id)
	}
	clear(f.by)
	return nil, bad, fmt.Errorf("node: snapshot: no donor's weights hash to the announced %x", f.hash[:8])
}

// snapPair is a state: a set of updates and the weights they give.
type snapPair struct {
	dig  zo.SetDigest
	hash [32]byte
}

// attestation is one machine's claim that it held a state.
type attestation struct {
	machine uint64
	pair    snapPair
}

// attestations are the fresh announcements of undiscredited machines (their
// current state) and the snapshot infos of donors not refused (the agreed
// state each serves, which a donor that trains on has moved past), each
// under its donor's machine. A machine may attest two pairs this way: both
// are states it held.
func (d *Daemon) attestations(offers []p2p.SnapshotOffer, refused map[peer.ID]bool) []attestation {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	var out []attestation
	for m, h := range d.states {
		if now.Sub(h.at) <= d.stateTTL() && h.st.Count > 0 {
			out = append(out, attestation{m, snapPair{h.st.Digest, h.st.WeightsHash}})
		}
	}
	for _, o := range offers {
		m, ok := p2p.MachineOfPeer(o.From)
		if _, bad := d.discredited[m]; !ok || bad || refused[o.From] || o.Info.Count == 0 {
			continue
		}
		out = append(out, attestation{m, snapPair{o.Info.Digest, o.Info.Hash}})
	}
	return out
}

// tally is the pair the most distinct machines attest, and how many: a
// machine counts once per pair however many ways it attests it.
func tally(atts []attestation) (snapPair, int) {
	seen := map[attestation]bool{}
	votes := map[snapPair]int{}
	var best snapPair
	for _, a := range atts {
		if seen[a] {
			continue
		}
		seen[a] = true
		votes[a.pair]++
		if n := votes[a.pair]; n > votes[best] || n == votes[best] && bytes.Compare(a.pair.hash[:], best.hash[:]) < 0 {
			best = a.pair
		}
	}
	return best, votes[best]
}

// awaitLogged runs anti-entropy rounds until the log holds every update of
// want (the loop logs what they deliver) or the deadline passes.
func (d *Daemon) awaitLogged(ctx context.Context, want store.Summary, deadline time.Time) error {
	for ctx.Err() == nil {
		if want.SubsetOf(d.run.Log.Summary()) {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("node: snapshot: its updates could not all be fetched in time")
		}
		if d.peer.SyncNow(ctx) == 0 {
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
	return ctx.Err()
}

func sleepCtx(ctx context.Context, t time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(t):
	}
}

// verifyReq asks the background verifier to replay a snapshot's set.
type verifyReq struct {
	included store.Summary
	hash     [32]byte
	report   func(string)
}

// verifySnapshots serves verification requests until ctx ends: each
// rebuilds the base weights and replays exactly the snapshot's set from the
// log, on its own engine, while the peer contributes.
func (d *Daemon) verifySnapshots(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-d.verifyC:
			r.report(d.verifySnapshot(ctx, r))
		}
	}
}

func (d *Daemon) verifySnapshot(ctx context.Context, r verifyReq) string {
	lm, _, err := OpenModel(d.s.Model)
	if err != nil {
		return "error: " + err.Error()
	}
	specs, err := TrainableSpecs(lm, d.s.Trainable)
	if err != nil {
		return "error: " + err.Error()
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		return "error: " + err.Error()
	}
	w.DropViews()
	eng, err := zo.NewEngine(d.run.Engine.Config(), w)
	if err != nil {
		return "error: " + err.Error()
	}
	res, err := d.run.Log.Replay(ctx, eng, store.ReplayOptions{FromBase: true, Only: r.included})
	switch {
	case err != nil:
		return "error: " + err.Error()
	case res.Hash != r.hash:
		d.log.Error("SNAPSHOT MISMATCH: a full replay of the snapshot's updates gives other weights", "replayed", fmt.Sprintf("%x", res.Hash[:8]),
			"snapshot", fmt.Sprintf("%x", r.hash[:8]))
		return fmt.Sprintf("mismatch: replay gives %x", res.Hash[:8])
	}
	d.log.Info("snapshot verified by a full replay", "updates", res.Applied)
	return "verified"
}
