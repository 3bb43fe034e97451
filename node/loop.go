package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// loop is the only goroutine that touches the engine and the trainer: it
// applies what peers send, contributes steps while allowed, keeps the
// (set digest, weights hash) pair and the eval loss current, and checks peers'
// announcements against its own.
func (d *Daemon) loop(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	d.refresh(ctx, true)
	for {
		if err := d.drain(ctx); err != nil {
			return err
		}
		if err := d.checkAccusations(ctx); err != nil {
			return err
		}
		if d.contributing() {
			if err := d.contribute(ctx); err != nil {
				return err
			}
			d.progress()
			d.serveExport()
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case req := <-d.installC:
			d.install(ctx, req)
		case req := <-d.exportC:
			r, err := d.exportNow(req.out)
			req.done <- exportAnswer{r, err}
		case b := <-d.peer.Batches():
			if err := d.take(ctx, b); err != nil {
				return err
			}
		case ev := <-d.peer.Evidences():
			if err := d.evidence(ctx, ev); err != nil {
				return err
			}
		case st := <-d.peer.States():
			d.compare(ctx, st)
		case <-tick.C:
			if err := d.verifySome(ctx, 0); err != nil {
				return err
			}
			d.fresh()
			d.refresh(ctx, false)
			d.progress() // counts stay current while catching up
		}
	}
}

// drainBudget bounds the time drain spends taking peers' batches before the
// peer's own next step: under a flood of valid batches a peer keeps
// training, and what waits stays in bounded queues (or is left to
// anti-entropy) until it is taken.
const drainBudget = 200 * time.Millisecond

// drain takes the batches, evidence and states already waiting, without
// blocking, for at most drainBudget. The batches' updates are applied
// together (Trainer.Take) when something next reads the weights: by the
// next step's first forward pass (fused, zo.Engine.ApplyStep) when the peer
// contributes, else by the reader's flush.
func (d *Daemon) drain(ctx context.Context) error {
	deadline := time.Now().Add(drainBudget)
	for time.Now().Before(deadline) {
		select {
		case b := <-d.peer.Batches():
			if err := d.takeDeferred(ctx, b); err != nil {
				return err
			}
		case ev := <-d.peer.Evidences():
			if err := d.evidence(ctx, ev); err != nil {
				return err
			}
		case st := <-d.peer.States():
			d.compare(ctx, st) // reads the recorded pair, not the weights
		default:
			return nil
		}
	}
	return nil
}

// take logs a validated batch from a peer, with its signed bytes, and applies
// it. Two conflicting batches can both pass validation before either is
// logged; the log catches the second, p2p is told so that it flags the
// machine, and the two signed batches are the evidence that excludes it.
func (d *Daemon) take(ctx context.Context, b *p2p.Batch) error {
	defer d.run.Trainer.Flush()
	return d.takeDeferred(ctx, b)
}

// takeDeferred is take, leaving the batch's updates pending (Trainer.Take).
func (d *Daemon) takeDeferred(ctx context.Context, b *p2p.Batch) error {
	if d.run.Log.Excluded(b.Machine) {
		// Only a Want delivers a banned machine's batch: an accusation's
		// basis names it (recompute.go). It is kept, never logged.
		if d.run.Trainer.bannedNotEquivocator(b.Machine) {
			return d.run.Log.KeepBannedBatch(ctx, b.Raw, b.Updates())
		}
		return nil
	}
	eqs, err := d.run.Trainer.Take(ctx, b.Raw, b.Updates())
	if err != nil {
		return err
	}
	if len(eqs) == 0 {
		d.offerCandidate(b)
		return nil
	}
	e := eqs[0]
	d.peer.ReportEquivocation(p2p.Equivocation{Machine: e.Stored.Machine, Sample: e.Stored.Sample,
		Held: e.Stored, Got: e.Offered, Batch: b.Raw})
	held, err := d.run.Log.Batches(e.Stored.Machine, e.Stored.Sample, e.Stored.Sample, 1)
	if err != nil {
		return err
	}
	for _, raw := range held {
		if ev, err := p2p.NewEvidence(d.peer.RunTag(), raw, b.Raw); err == nil {
			return d.exclude(ctx, ev)
		}
	}
	return nil
}

// evidence takes evidence from p2p: equivocation is self-evident and
// excludes at once; an accusation waits for this peer's re-computation.
func (d *Daemon) evidence(ctx context.Context, ev *p2p.Evidence) error {
	if ev.IsAccusation() {
		d.offerAccusation(ev)
		return nil
	}
	return d.exclude(ctx, ev)
}

// exclude settles an equivocation or a confirmed accusation (a ban): the
// evidence (verified by p2p; an accusation also re-computed here) excludes
// its machine from the log and the weights, exactly, and is published so
// that every peer does the same. A machine already excluded changes nothing.
func (d *Daemon) exclude(ctx context.Context, ev *p2p.Evidence) error {
	exclude := d.run.Log.Exclude
	if ev.IsAccusation() {
		exclude = d.run.Log.Ban // keeps the machine's batches for peers still re-computing
	}
	removed, fresh, err := exclude(ctx, ev.Machine, ev.Raw)
	if err != nil {
		return err
	}
	if !fresh {
		return nil
	}
	d.run.Trainer.Exclude(ev.Machine, removed)
	d.noteExcluded(ev.Machine, ev.Raw, d.peer.RunTag())
	switch {
	case ev.IsAccusation() && ev.Machine == d.s.Machine:
		d.log.Error("THIS machine is banned from the run: a confirmed accusation says its gradient is wrong", "sample", ev.Sample,
			"accuser", fmt.Sprintf("%016x", ev.Accuser))
	case ev.IsAccusation():
		d.log.Warn("machine banned from the run: its gradient did not re-compute", "machine", fmt.Sprintf("%016x", ev.Machine),
			"sample", ev.Sample, "accuser", fmt.Sprintf("%016x", ev.Accuser), "updates_removed", len(removed))
	case ev.Machine == d.s.Machine:
		d.log.Error("THIS machine is excluded from the run: it signed two values for one sample (was its home copied or restored?)",
			"sample", ev.Sample)
	default:
		d.log.Warn("machine excluded from the run for equivocating", "machine", fmt.Sprintf("%016x", ev.Machine),
			"sample", ev.Sample, "updates_removed", len(removed))
	}
	if err := d.peer.PublishEvidence(ctx, ev); err != nil && ctx.Err() == nil {
		d.log.Warn("publishing evidence failed; anti-entropy will spread it", "err", err)
	}
	d.refresh(ctx, true)
	return nil
}

// noteExcluded lists an excluded machine in the status.
func (d *Daemon) noteExcluded(machine uint64, evidence []byte, run p2p.RunTag) {
	x := Excluded{Machine: fmt.Sprintf("%016x", machine), Reason: p2p.ReasonEquivocation}
	ev, err := p2p.DecodeEvidence(evidence, run)
	if err == nil {
		x.Sample = ev.Sample
		if ev.IsAccusation() {
			x.Reason = ReasonAccusation
		}
	}
	d.snapshot(func(st *Status) {
		st.ExcludedTotal++
		if len(st.Excluded) < maxExcludedShown {
			st.Excluded = append(st.Excluded, x)
		}
		if x.Reason == ReasonAccusation && len(st.Verification.Banned) < maxExcludedShown {
			st.Verification.Banned = append(st.Verification.Banned, x.Machine)
		}
	})
}

// contributing reports whether this peer should train now: within its
// --steps budget and not catching up. Before it says yes, the machine's next
// sample moves past any of its own samples that arrived from peers (a home
// restored from an older copy learns them while catching up), so no sample
// index is ever used twice.
func (d *Daemon) contributing() bool {
	catching := d.catchingUp.Load()
	ok := (d.s.Steps == 0 || d.steps < d.s.Steps) && !catching // Steps < 0: serve only
	// On the weights as applied: the pending updates wait for the step's
	// first forward pass (Propose reports an overflow they cause).
	if err := d.run.Trainer.overflow(); err != nil {
		ok = false
		d.snapshot(func(st *Status) {
			if st.Overflow == "" {
				d.log.Error("refusing to train: "+err.Error(), "updates", d.run.Log.Stats().Updates)
			}
			st.Overflow = err.Error()
		})
	} else {
		d.snapshot(func(st *Status) { st.Overflow = "" })
	}
	if d.run.Log.Excluded(d.s.Machine) {
		ok = false // its own updates would be refused by everyone
	}
	if ok {
		if from, moved := d.run.Trainer.SkipPublished(); moved {
			d.log.Warn("this machine's own updates came from peers: its next sample moves past them (was this home restored from an older copy?)",
				"from", from, "next_sample", d.run.Trainer.NextSample())
		}
	}
	state := StateTraining
	switch {
	case catching:
		state = StateCatchingUp
	case !ok:
		state = StateServing
	}
	d.snapshot(func(st *Status) {
		if st.State != StateFailed && st.State != StateStopping {
			st.State = state
		}
		st.Contributing, st.CatchingUp = ok, catching
	})
	return ok
}

// contribute runs one step: propose, sign, log durably, apply, then publish.
func (d *Daemon) contribute(ctx context.Context) error {
	t0 := time.Now()
	defer func() { d.met.step.Observe(time.Since(t0).Seconds()) }()
	p, err := d.run.Trainer.Propose(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // abandoned mid-step: nothing was logged
		}
		if errors.Is(err, ErrOverflow) {
			return nil // the pending updates it applied overflowed: contributing() now says so
		}
		return err
	}
	exts := p.Exts()
	if d.ps.TestLie {
		for i, c := range p.Codes {
			p.Codes[i] = -c // the test-only liar: gradient ascent that looks honest
		}
	}
	b, err := d.peer.NewBatchExt(p.First, p.Exp, p.Codes, exts)
	if err != nil {
		return err
	}
	if err := d.run.Trainer.Commit(ctx, p, b.Raw); err != nil {
		return err
	}
	if err := d.peer.Publish(ctx, b); err != nil && ctx.Err() == nil {
		d.log.Warn("publish failed; anti-entropy will deliver the batch", "err", err)
	}
	if err := d.verifySome(ctx, len(p.Codes)); err != nil {
		return err
	}
	d.steps++
	d.trainLoss.add(p.Loss)
	d.forwards += d.run.Trainer.Forwards(len(p.Codes))
	if d.s.EvalEvery > 0 && d.steps%d.s.EvalEvery == 0 || d.s.Steps != 0 && d.steps == d.s.Steps {
		d.refresh(ctx, true)
		d.log.Info("step", "step", d.steps, "loss", fmt.Sprintf("%.4f", p.Loss), "updates", d.run.Log.Stats().Updates)
	} else {
		d.fresh()
	}
	if d.s.CkptEvery > 0 && d.steps%d.s.CkptEvery == 0 {
		if _, err := d.run.Trainer.Checkpoint(ctx); err != nil {
			return err
		}
	}
	return nil
}

// refresh recomputes the weights hash when the set changed, at most once per
// announcement interval unless forced (hashing reads every weight), and the
// eval loss when forced or when the set changed and a few seconds passed.
func (d *Daemon) refresh(ctx context.Context, force bool) {
	dig := d.run.Log.Digest()
	n := d.run.Log.Stats().Updates
	if (dig != d.hashAt || d.snap.WeightsHash == "") && (force || time.Since(d.lastHash) >= d.ps.StateEvery) {
		d.hashNow()
	}
	// A rejected equivocation leaves the log as it was, so this is refreshed apart.
	flagged := flaggedMachines(d.peer.Flagged())
	d.snapshot(func(st *Status) { st.Flagged = flagged })
	if force || n != d.evalAt && time.Since(d.lastEval) > 5*time.Second {
		loss, _, err := d.run.Trainer.Eval(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("eval failed", "err", err)
			}
			return
		}
		d.lastEval, d.evalAt = time.Now(), n
		d.snapshot(func(st *Status) { st.EvalLoss, st.EvalUpdates = &loss, n })
		d.watch.record(Point{Time: float64(d.lastEval.UnixMilli()) / 1000, Updates: n, Own: d.run.Log.Held(d.s.Machine).Count(), EvalLoss: loss,
			TrainLoss: d.trainLoss.take(), Forwards: d.forwards})
	}
}

// fresh keeps the status current while the peer trains, without the eval
// pass: counts after every step, and the (set digest, weights hash) pair
// every --state-every, which is what the next announcement carries.
func (d *Daemon) fresh() {
	n := d.run.Log.Stats().Updates
	own := d.run.Log.Held(d.s.Machine).Count()
	d.snapshot(func(st *Status) {
		st.Updates, st.OwnUpdates, st.NextSample, st.Steps = n, own, d.run.Trainer.NextSample(), d.steps
	})
	if time.Since(d.lastHash) < d.ps.StateEvery {
		return
	}
	dig := d.run.Log.Digest()
	if dig == d.hashAt || d.run.Trainer.Held() {
		return
	}
	d.run.Trainer.Flush()
	h := d.run.Engine.Weights().Hash()
	d.hashAt, d.lastHash = dig, time.Now()
	d.snapshot(func(st *Status) {
		st.SetDigest, st.WeightsHash, st.HashUpdates = dig.String(), fmt.Sprintf("%x", h), n
	})
	d.peer.AnnounceSoon()
}

// maxMismatches bounds the mismatches the status keeps (the newest).
const maxMismatches = 64

func flaggedMachines(eqs []p2p.Equivocation) []string {
	var out []string
	for _, e := range eqs {
		out = append(out, fmt.Sprintf("%016x", e.Machine))
	}
	return out
}

// Announcements are claims: a peer's count (or digest) can make this peer
// run a verified anti-entropy round, never keep it from contributing by
// itself. A state is forgotten stateTTL after it arrived; a machine whose
// claim a verified round did not bear out is ignored for discreditFor.
const (
	stateTTLIntervals = p2p.IdleAnnounce + 1 // p2p re-announces an unchanged state every IdleAnnounce intervals
	discreditFor      = 10 * time.Minute
)

func (d *Daemon) stateTTL() time.Duration {
	return max(stateTTLIntervals*d.ps.StateEvery, time.Second)
}

// compare checks a peer's announcement against our own pair and, when it
// claims more than MaxLag updates beyond ours, asks for a verified catch-up
// round: only what donors can actually send decides whether we are behind.
func (d *Daemon) compare(ctx context.Context, st p2p.State) {
	now := time.Now()
	d.mu.Lock()
	until, bad := d.discredited[st.Machine]
	if bad && now.After(until) {
		delete(d.discredited, st.Machine)
		d.snap.Discredited = d.discreditedList()
		bad = false
	}
	d.mu.Unlock()
	if bad {
		return
	}
	if st.Digest == d.hashAt {
		// Our hash for this digest is current: compare.
		d.mu.Lock()
		ours := d.snap.WeightsHash
		d.mu.Unlock()
		if theirs := fmt.Sprintf("%x", st.WeightsHash); ours != "" && theirs != ours {
			m := Mismatch{Machine: fmt.Sprintf("%016x", st.Machine), SetDigest: st.Digest.String(),
				TheirHash: theirs, OurHash: ours, ObservedAt: time.Now().UTC().Format(time.RFC3339)}
			d.snapshot(func(s *Status) {
				for _, old := range s.Mismatches {
					if old.Machine == m.Machine && old.SetDigest == m.SetDigest {
						return // announced again: already reported
					}
				}
				d.log.Error("WEIGHTS HASH MISMATCH: a peer with our exact set of updates reports other weights",
					"peer_machine", m.Machine, "set_digest", m.SetDigest, "their_hash", theirs, "our_hash", ours)
				s.Mismatches = append(s.Mismatches[max(0, len(s.Mismatches)-maxMismatches+1):], m)
			})
		} else if ours != "" {
			d.noteAgreed(ctx)
		}
	}
	d.watch.heardFrom(st, now)
	d.mu.Lock()
	d.states[st.Machine] = heard{st: st, at: now}
	best := d.bestLocked(now)
	d.mu.Unlock()
	if have := d.run.Log.Stats().Updates; have+d.ps.MaxLag < st.Count && !d.catchingUp.Load() {
		d.log.Info("a peer announces more updates: verifying with donors before contributing", "have", have,
			"announced", st.Count, "machine", fmt.Sprintf("%016x", st.Machine), "best", best)
		d.catchingUp.Store(true)
		d.wakeCatchUp()
	}
}

// bestLocked forgets expired states and returns the largest count among the
// rest (status best_peer_updates). d.mu is held.
func (d *Daemon) bestLocked(now time.Time) uint64 {
	var best uint64
	for m, h := range d.states {
		if now.Sub(h.at) > d.stateTTL() {
			delete(d.states, m)
			continue
		}
		best = max(best, h.st.Count)
	}
	d.snap.BestPeer = best
	return best
}

// discreditedList is the status's view of d.discredited. d.mu is held.
func (d *Daemon) discreditedList() []string {
	out := make([]string, 0, len(d.discredited))
	for m := range d.discredited {
		out = append(out, fmt.Sprintf("%016x", m))
	}
	slices.Sort(out)
	return out
}

// discredit ignores, for discreditFor, every machine whose fresh claim is
// more than MaxLag beyond what a verified round left us holding: the round's
// donors had nothing more to send, so the claim was not backed by anything.
// Only claims heard before the round began (before) are judged by it.
func (d *Daemon) discredit(have uint64, before time.Time) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for m, h := range d.states {
		if h.st.Count <= have+d.ps.MaxLag || now.Sub(h.at) > d.stateTTL() || !h.at.Before(before) {
			continue
		}
		delete(d.states, m)
		if _, already := d.discredited[m]; !already {
			d.log.Warn("a peer's announcement was not borne out by anti-entropy: ignoring its announcements for a while",
				"machine", fmt.Sprintf("%016x", m), "announced", h.st.Count, "have", have, "for", discreditFor)
		}
		d.discredited[m] = now.Add(discreditFor)
	}
	d.snap.Discredited = d.discreditedList()
	d.bestLocked(now)
}

// wakeCatchUp asks the catch-up goroutine for a round now.
func (d *Daemon) wakeCatchUp() {
	select {
	case d.wakeC <- struct{}{}:
	default:
	}
}

// donorWait bounds how long a peer that has connections, but no donor among
// them, waits before contributing without catch-up (it logs a WARN then).
func (d *Daemon) donorWait() time.Duration { return max(30*time.Second, 6*d.ps.SyncEvery) }

// catchUp runs the catch-up state machine; it exits with ctx. While the peer
// is catching up it runs anti-entropy rounds back to back and ends catch-up
// only when a round fetched nothing and donors (peers on the run's topic
// that speak the sync protocol, not mere connections) then confirm by their
// digests that nothing, and nothing of this machine's own, is missing. What
// peers announce never enters that decision: announcements only ask for a
// round (compare), and claims the round does not bear out are discredited.
// A peer with no connection at all after SyncEvery, or no donor after
// donorWait, is alone: it contributes, with a WARN in the second case.
func (d *Daemon) catchUp(ctx context.Context) {
	start := time.Now()
	for d.peer.Donors() == 0 {
		waited := time.Since(start)
		if d.peer.Stats().Peers == 0 && waited >= d.ps.SyncEvery {
			d.log.Info("no peer reachable: contributing as the first peer of the run")
			break
		}
		if waited >= d.donorWait() {
			d.log.Warn("connected, but no peer of the run answers the sync protocol: contributing without catch-up",
				"peers", d.peer.Stats().Peers, "waited", waited.Round(time.Second))
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	if d.run.Trainer.Held() {
		d.snapshotJoin(ctx)
	}
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		case <-d.wakeC:
			// An announcement asked for a round (compare already paused
			// contributing; this round may have just ended it).
			d.catchingUp.Store(true)
		}
		if d.catchingUp.Load() {
			d.catchUpRounds(ctx, start)
			if have := d.run.Log.Stats().Updates; !d.catchingUp.Load() {
				progressFrom(ctx)(Progress{Task: "catch-up", Done: have, Total: have, Unit: "updates", Finished: true})
			}
		}
		if !wait.Stop() {
			select {
			case <-wait.C:
			default:
			}
		}
		wait.Reset(d.ps.SyncEvery)
	}
}

// catchUpRounds runs rounds until a verified one leaves nothing missing, or
// no donor can be reached, or donors' digests list updates that rounds keep
// failing to fetch (digests are claims too).
func (d *Daemon) catchUpRounds(ctx context.Context, start time.Time) {
	empty := 0 // rounds in a row that fetched nothing while donors listed something missing
	for ctx.Err() == nil {
		t0 := time.Now()
		got := d.peer.SyncNow(ctx)
		d.met.syncRound.Observe(time.Since(t0).Seconds())
		have := d.run.Log.Stats().Updates
		if got > 0 {
			d.mu.Lock()
			best := d.snap.BestPeer
			d.mu.Unlock()
			progressFrom(ctx)(Progress{Task: "catch-up", Done: have, Total: max(best, have), Unit: "updates"})
			empty = 0
			d.log.Info("catching up", "fetched", got, "have", have,
				"updates_per_s", int(float64(got)/time.Since(t0).Seconds()))
			continue
		}
		v := d.peer.Verify(ctx, d.s.Machine)
		if ctx.Err() != nil {
			return
		}
		if v.Answered == 0 {
			if d.peer.Donors() > 0 && time.Since(start) < d.donorWait() {
				// Donors that did not answer (busy, slow): try again shortly.
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(d.ps.SyncEvery, time.Second)):
				}
				continue
			}
			// Nobody can back any claim: they are all unverified.
			d.discredit(have, t0)
			d.caughtUp(have, "no donor reachable")
			return
		}
		if v.Missing > 0 {
			empty++
			switch {
			case v.MissingOf == 0 && v.Missing <= d.ps.MaxLag && empty >= 2:
				// Peers keep training: new updates appear between a round
				// and its check; this close, gossip delivers the rest.
			case empty >= 5:
				d.log.Warn("donors list updates that no round could fetch: ending catch-up without them",
					"missing", v.Missing, "own_missing", v.MissingOf, "rounds", empty)
			default:
				continue
			}
		}
		d.discredit(have, t0)
		d.caughtUp(have, "verified by donors")
		return
	}
}

// progress keeps the status's counts current while the loop trains without
// a pause (refresh, with the weights hash, runs between steps only when the
// loop waits).
func (d *Daemon) progress() {
	n, own := d.run.Log.Stats().Updates, d.run.Log.Held(d.s.Machine).Count()
	d.snapshot(func(st *Status) {
		st.Updates, st.OwnUpdates, st.NextSample, st.Steps = n, own, d.run.Trainer.NextSample(), d.steps
	})
	d.watch.count(time.Now(), n, own)
}

func (d *Daemon) caughtUp(have uint64, how string) {
	d.catchingUp.Store(false)
	d.log.Info("caught up", "updates", have, "by", how)
}

// logAdapter shows the store to p2p as the log it validates against and serves from.
type logAdapter struct{ s *store.Store }

func (a logAdapter) Get(machine, sample uint64) (zo.Update, bool, error) {
	return a.s.Get(machine, sample)
}

func (a logAdapter) Holdings() ([]p2p.Holding, error) {
	sum := a.s.Summary()
	out := make([]p2p.Holding, 0, len(sum))
	for _, m := range sum.Machines() {
		var rs p2p.Ranges
		for _, r := range sum[m] {
			rs = rs.Add(r.First, r.Last)
		}
		d := a.s.MachineDigest(m)
		out = append(out, p2p.Holding{Machine: m, Samples: rs, Digest: binary.BigEndian.Uint64(d[:8])})
	}
	return out, nil
}

func (a logAdapter) Batches(machine, lo, hi uint64, max int) ([][]byte, error) {
	return a.s.Batches(machine, lo, hi, max)
}

func (a logAdapter) Excluded(machine uint64) bool { return a.s.Excluded(machine) }

func (a logAdapter) Exclusions() []uint64 {
	ex := a.s.Exclusions()
	out := make([]uint64, len(ex))
	for i, e := range ex {
		out[i] = e.Machine
	}
	return out
}

func (a logAdapter) Evidence(machine uint64) ([]byte, bool) { return a.s.Evidence(machine) }

// emptyLog is the log of a peer that only fetches the manifest.
type emptyLog struct{}

func (emptyLog) Get(uint64, uint64) (zo.Update, bool, error)           { return zo.Update{}, false, nil }
func (emptyLog) Holdings() ([]p2p.Holding, error)                      { return nil, nil }
func (emptyLog) Batches(uint64, uint64, uint64, int) ([][]byte, error) { return nil, nil }
func (emptyLog) Excluded(uint64) bool                                  { return false }
func (emptyLog) Exclusions() []uint64                                  { return nil }
func (emptyLog) Evidence(uint64) ([]byte, bool)                        { return nil, false }
