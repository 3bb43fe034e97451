package node

import (
	"context"
	"encoding/binary"
	"fmt"
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
		if d.contributing() {
			if err := d.contribute(ctx); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-d.peer.Batches():
			if err := d.take(ctx, b); err != nil {
				return err
			}
		case st := <-d.peer.States():
			d.compare(st)
		case <-tick.C:
			d.refresh(ctx, false)
		}
	}
}

// drain takes every batch and state already waiting, without blocking.
func (d *Daemon) drain(ctx context.Context) error {
	for {
		select {
		case b := <-d.peer.Batches():
			if err := d.take(ctx, b); err != nil {
				return err
			}
		case st := <-d.peer.States():
			d.compare(st)
		default:
			return nil
		}
	}
}

// take logs a validated batch from a peer, with its signed bytes, and applies
// it. Two conflicting batches can both pass validation before either is
// logged; the log catches the second, and p2p is told so that it flags the machine.
func (d *Daemon) take(ctx context.Context, b *p2p.Batch) error {
	eqs, err := d.run.Trainer.Apply(ctx, b.Raw, b.Updates())
	if err != nil {
		return err
	}
	for _, e := range eqs {
		d.peer.ReportEquivocation(p2p.Equivocation{Machine: e.Stored.Machine, Sample: e.Stored.Sample,
			Held: e.Stored, Got: e.Offered, Batch: b.Raw})
	}
	return nil
}

// contributing reports whether this peer should train now: within its
// --steps budget and not far behind the best peer it has heard of.
func (d *Daemon) contributing() bool {
	ok := (d.s.Steps == 0 || d.steps < d.s.Steps) && !d.catchingUp.Load() // Steps < 0: serve only
	d.snapshot(func(st *Status) { st.Contributing, st.CatchingUp = ok, d.catchingUp.Load() })
	return ok
}

// contribute runs one step: propose, sign, log durably, apply, then publish.
func (d *Daemon) contribute(ctx context.Context) error {
	p, err := d.run.Trainer.Propose(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // abandoned mid-step: nothing was logged
		}
		return err
	}
	b, err := d.peer.NewBatch(p.First, p.Exp, p.Codes)
	if err != nil {
		return err
	}
	if err := d.run.Trainer.Commit(ctx, p, b.Raw); err != nil {
		return err
	}
	if err := d.peer.Publish(ctx, b); err != nil && ctx.Err() == nil {
		d.log.Warn("publish failed; anti-entropy will deliver the batch", "err", err)
	}
	d.steps++
	if d.s.EvalEvery > 0 && d.steps%d.s.EvalEvery == 0 || d.s.Steps != 0 && d.steps == d.s.Steps {
		d.refresh(ctx, true)
		d.log.Info("step", "step", d.steps, "loss", fmt.Sprintf("%.4f", p.Loss), "updates", d.run.Log.Stats().Updates)
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
		h := d.run.Engine.Weights().Hash()
		d.hashAt, d.lastHash = dig, time.Now()
		own := d.run.Log.Held(d.s.Machine).Count()
		d.snapshot(func(st *Status) {
			st.Updates, st.OwnUpdates, st.NextSample, st.Steps = n, own, d.run.Trainer.NextSample(), d.steps
			st.SetDigest, st.WeightsHash, st.HashUpdates = dig.String(), fmt.Sprintf("%x", h), n
		})
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
	}
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

// compare checks a peer's announcement against our own pair and tracks how
// far ahead the best peer is.
func (d *Daemon) compare(st p2p.State) {
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
		}
	}
	d.mu.Lock()
	d.states[st.Machine] = st
	var best uint64
	for _, s := range d.states {
		best = max(best, s.Count)
	}
	d.snap.BestPeer = best
	d.mu.Unlock()
	if have := d.run.Log.Stats().Updates; have+d.ps.MaxLag < best && !d.catchingUp.Load() {
		d.log.Info("behind the best peer: catching up before contributing", "have", have, "best", best)
		d.catchingUp.Store(true)
	}
}

// catchUp runs anti-entropy rounds back to back while the peer is catching
// up, and declares it caught up once a round fetches nothing and no peer it
// has heard of is more than MaxLag ahead. It exits with ctx.
func (d *Daemon) catchUp(ctx context.Context) {
	// A round with no peer connected fetches nothing and would declare a
	// joiner caught up: give discovery until the first connection, or SyncEvery.
	for deadline := time.Now().Add(d.ps.SyncEvery); d.peer.Stats().Peers == 0 && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
		for d.catchingUp.Load() && ctx.Err() == nil {
			start := time.Now()
			got := d.peer.SyncNow(ctx)
			d.mu.Lock()
			best := d.snap.BestPeer
			d.mu.Unlock()
			have := d.run.Log.Stats().Updates
			if got > 0 {
				d.log.Info("catching up", "fetched", got, "have", have, "best", best,
					"updates_per_s", int(float64(got)/time.Since(start).Seconds()))
				continue
			}
			if have+d.ps.MaxLag >= best {
				d.catchingUp.Store(false)
				d.log.Info("caught up", "updates", have)
			}
			break
		}
		wait.Reset(d.ps.SyncEvery)
	}
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
