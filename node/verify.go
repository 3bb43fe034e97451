package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/zo"
)

// Re-verification in public-data runs (docs/PROTOCOL.md §11): the loop
// spends a fraction of its compute re-computing random samples of other
// machines' recent batches at their stated basis; a sample whose claim
// misses by more than twice the run's tolerance is accused. Every
// accusation that arrives is re-computed before anything is banned, and the
// ban needs only the tolerance itself: the factor 2 between the two is the
// margin that makes every honest peer confirm an honest accusation.
const (
	// accuseFactor is the accuser's threshold in units of the manifest's
	// tolerance τ; a receiver confirms above 1·τ.
	accuseFactor = 2
	// maxCandidates bounds the recent batches kept for verification.
	maxCandidates = 256
	// candidateTries bounds how often a candidate whose basis this peer
	// does not hold yet is put back.
	candidateTries = 5
	// maxVerifyOutside bounds the updates a verification subtracts to reach
	// a basis: verification picks recent batches, whose basis is close.
	maxVerifyOutside = 4096
	// maxPendingChecks and maxChecksPerAccuser bound the accusations waiting
	// to be re-computed, so accusations cannot become a denial of service:
	// each costs two forward passes (and the subtraction to its basis).
	maxPendingChecks    = 64
	maxChecksPerAccuser = 4
	// checkRetry and checkTTL pace an accusation whose basis this peer does
	// not hold yet; after checkTTL it is dropped (anti-entropy delivers the
	// evidence again while a donor lists the machine as excluded).
	checkRetry = 5 * time.Second
	checkTTL   = 10 * time.Minute
	// maxJudged bounds the remembered verdicts on accusations.
	maxJudged = 4096
)

// VerifyStatus is the status's view of re-verification (public-data runs).
type VerifyStatus struct {
	Fraction  float64 `json:"fraction"`  // --verify-fraction
	Tolerance float64 `json:"tolerance"` // the manifest's τ
	Verified  uint64  `json:"verified"`  // other machines' samples re-computed that matched
	Skipped   uint64  `json:"skipped"`   // candidates that could not be re-computed
	// SkippedBy splits Skipped by reason: basis_missing (not held after a
	// few tries), basis_far (more than maxVerifyOutside updates away),
	// basis_excluded (names a machine excluded for equivocation, or a
	// banned one whose batches this peer lacks), non_finite (our loss).
	SkippedBy map[string]uint64 `json:"skipped_by,omitempty"`
	MaxExcess float64           `json:"max_excess"` // the largest excess among samples that matched: the observed noise
	// Accusations: made by this peer; confirmed and rejected by its own
	// re-computation (its own included); pending re-computation; dropped
	// because the queue (or the accuser's share of it) was full.
	AccusationsMade      uint64   `json:"accusations_made"`
	AccusationsConfirmed uint64   `json:"accusations_confirmed"`
	AccusationsRejected  uint64   `json:"accusations_rejected"`
	AccusationsPending   int      `json:"accusations_pending"`
	AccusationsDropped   uint64   `json:"accusations_dropped"`
	Banned               []string `json:"banned_machines"` // machines banned on an accusation (first 256)
}

// ReasonAccusation is the reason of an exclusion by a confirmed accusation
// (a ban), in the status's excluded_machines.
const ReasonAccusation = "accusation"

type candidate struct {
	b     *p2p.Batch
	tries int
}

type pendingCheck struct {
	ev    *p2p.Evidence
	key   [32]byte
	since time.Time
	next  time.Time
}

// verifier is the loop's re-verification state (owned by the loop).
type verifier struct {
	rng       *rand.Rand
	credit    float64
	cands     []candidate
	checks    []*pendingCheck
	byAccuser map[uint64]int
	judged    map[[32]byte]bool
}

func newVerifier() *verifier {
	return &verifier{rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), byAccuser: map[uint64]int{}, judged: map[[32]byte]bool{}}
}

// public reports whether the run re-verifies (a public-data run).
func (d *Daemon) public() bool { return d.run.Trainer.public != nil }

// offerCandidate keeps a peer's batch for verification.
func (d *Daemon) offerCandidate(b *p2p.Batch) {
	if !d.public() || b.Machine == d.s.Machine {
		return
	}
	if _, ok := b.Ext(p2p.ExtBasis); !ok {
		return
	}
	v := d.ver
	if len(v.cands) == maxCandidates {
		v.cands = append(v.cands[:0], v.cands[1:]...)
	}
	v.cands = append(v.cands, candidate{b: b})
}

// verifySome spends the credit earned by an own step of n samples (n may
// be 0: the loop calls it while idle too, for candidates whose basis has
// arrived since) on re-computing random samples of other machines' recent
// batches. A candidate whose basis is not held yet waits for a later call.
func (d *Daemon) verifySome(ctx context.Context, n int) error {
	if !d.public() || d.ps.VerifyFraction <= 0 {
		return nil
	}
	v := d.ver
	v.credit = min(v.credit+d.ps.VerifyFraction*float64(n), maxCandidates)
	var later []candidate
	defer func() { v.cands = append(later, v.cands...) }()
	for v.credit >= 1 && len(v.cands) > 0 {
		i := v.rng.IntN(len(v.cands))
		c := v.cands[i]
		v.cands = append(v.cands[:i], v.cands[i+1:]...)
		done, retry, err := d.verifyOne(ctx, c)
		if err != nil {
			return err
		}
		if retry {
			c.tries++
			later = append(later, c)
		}
		if done {
			v.credit--
		}
	}
	return nil
}

// verifyOne re-computes one random sample of c's batch; it reports whether
// it spent forward passes, and whether to try again later (the basis is
// not held yet).
func (d *Daemon) verifyOne(ctx context.Context, c candidate) (done, retry bool, err error) {
	b := c.b
	if d.run.Log.Excluded(b.Machine) {
		return false, false, nil
	}
	basis, err := p2p.DecodeBasis(mustExt(b))
	if err != nil {
		return false, false, nil // p2p checked it; nothing to verify
	}
	k := d.ver.rng.IntN(len(b.Codes))
	sample := b.First + uint64(k)
	g, err := d.run.Trainer.Recompute(ctx, b.Machine, sample, b.Update(k).Slot, basis, maxVerifyOutside)
	skip := func(why string) {
		d.snapshot(func(st *Status) {
			st.Verification.Skipped++
			if st.Verification.SkippedBy == nil {
				st.Verification.SkippedBy = map[string]uint64{}
			}
			st.Verification.SkippedBy[why]++
		})
	}
	switch {
	case errors.Is(err, errBasisMissing) && c.tries+1 < candidateTries:
		return false, true, nil
	case errors.Is(err, errBasisMissing):
		skip("basis_missing")
		return false, false, nil
	case errors.Is(err, errBasisFar):
		skip("basis_far")
		return false, false, nil
	case errors.Is(err, errBasisExcluded):
		skip("basis_excluded")
		return false, false, nil
	case err != nil:
		return false, false, err
	case math.IsNaN(g) || math.IsInf(g, 0):
		// An honest producer cannot have coded it either; never accuse on
		// our own non-finite loss.
		skip("non_finite")
		return true, false, nil
	}
	pd := d.run.Trainer.public
	ex := zo.Excess(b.Exp, b.Codes[k], g, d.s.GradBound)
	if !(ex > accuseFactor*pd.Tolerance) && !d.ps.TestAccuse {
		d.snapshot(func(st *Status) {
			st.Verification.Verified++
			st.Verification.MaxExcess = max(st.Verification.MaxExcess, ex)
		})
		return true, false, nil
	}
	ev, err := d.peer.NewAccusation(b.Raw, sample)
	if err != nil {
		return true, false, fmt.Errorf("node: accusing: %w", err)
	}
	d.log.Warn("re-computed sample does not match its claim: accusing the machine", "machine", fmt.Sprintf("%016x", b.Machine),
		"sample", sample, "claimed", zo.Dequantize(b.Exp, b.Codes[k]), "recomputed", g, "excess", ex, "tolerance", pd.Tolerance)
	d.remember(sha256.Sum256(ev.Raw), true)
	d.snapshot(func(st *Status) { st.Verification.AccusationsMade++; st.Verification.AccusationsConfirmed++ })
	return true, false, d.exclude(ctx, ev)
}

func mustExt(b *p2p.Batch) []byte {
	v, _ := b.Ext(p2p.ExtBasis)
	return v
}

// offerAccusation queues an accusation for re-computation, within the
// queue's bounds.
func (d *Daemon) offerAccusation(ev *p2p.Evidence) {
	v := d.ver
	key := sha256.Sum256(ev.Raw)
	if _, ok := v.judged[key]; ok || d.run.Log.Excluded(ev.Machine) {
		return
	}
	for _, c := range v.checks {
		if c.key == key {
			return
		}
	}
	if len(v.checks) >= maxPendingChecks || v.byAccuser[ev.Accuser] >= maxChecksPerAccuser {
		d.snapshot(func(st *Status) { st.Verification.AccusationsDropped++ })
		return
	}
	now := time.Now()
	v.checks = append(v.checks, &pendingCheck{ev: ev, key: key, since: now, next: now})
	v.byAccuser[ev.Accuser]++
	d.snapshot(func(st *Status) { st.Verification.AccusationsPending = len(v.checks) })
}

// checkAccusations re-computes the accusations that are due: confirmed, the
// machine is banned (an exclusion whose evidence is the accusation); not,
// the accuser pays (p2p.Peer.RejectAccusation).
func (d *Daemon) checkAccusations(ctx context.Context) error {
	v := d.ver
	now := time.Now()
	keep := v.checks[:0]
	var err error
	for _, c := range v.checks {
		if err != nil || c.next.After(now) {
			keep = append(keep, c)
			continue
		}
		var done bool
		done, err = d.checkOne(ctx, c, now)
		if !done {
			keep = append(keep, c)
			continue
		}
		v.byAccuser[c.ev.Accuser]--
		if v.byAccuser[c.ev.Accuser] <= 0 {
			delete(v.byAccuser, c.ev.Accuser)
		}
	}
	clear(v.checks[len(keep):])
	v.checks = keep
	d.snapshot(func(st *Status) { st.Verification.AccusationsPending = len(v.checks) })
	return err
}

// checkOne judges one accusation; it reports whether it is settled (or
// dropped).
func (d *Daemon) checkOne(ctx context.Context, c *pendingCheck, now time.Time) (bool, error) {
	ev := c.ev
	if d.run.Log.Excluded(ev.Machine) {
		return true, nil
	}
	ex, err := d.run.Trainer.AccusationExcess(ctx, ev)
	switch {
	case errors.Is(err, errBasisMissing):
		// Ask donors for what is missing: the accused machine's own earlier
		// batches may be served only by peers that banned it already.
		if basis, err := ev.Basis(); err == nil {
			for m, rs := range d.run.Trainer.missingOf(basis) {
				d.peer.Want(m, rs)
			}
		}
		c.next = now.Add(checkRetry)
		return now.Sub(c.since) > checkTTL, nil
	case errors.Is(err, errBasisExcluded):
		d.log.Warn("an accusation's basis names an excluded machine: it cannot be re-computed here", "machine", fmt.Sprintf("%016x", ev.Machine),
			"accuser", fmt.Sprintf("%016x", ev.Accuser))
		return true, nil
	case err != nil:
		return true, err
	}
	tol := d.run.Trainer.public.Tolerance
	d.remember(c.key, ex > tol)
	if ex > tol {
		d.snapshot(func(st *Status) { st.Verification.AccusationsConfirmed++ })
		d.log.Info("accusation confirmed by re-computation", "machine", fmt.Sprintf("%016x", ev.Machine), "sample", ev.Sample,
			"accuser", fmt.Sprintf("%016x", ev.Accuser), "excess", ex, "tolerance", tol)
		return true, d.exclude(ctx, ev)
	}
	ignored := d.peer.RejectAccusation(ev)
	d.snapshot(func(st *Status) { st.Verification.AccusationsRejected++ })
	d.log.Warn("accusation rejected: the re-computed sample matches its claim", "machine", fmt.Sprintf("%016x", ev.Machine),
		"sample", ev.Sample, "accuser", fmt.Sprintf("%016x", ev.Accuser), "excess", ex, "tolerance", tol, "accuser_ignored", ignored)
	return true, nil
}

// remember records a verdict, forgetting an arbitrary old one when full.
func (d *Daemon) remember(key [32]byte, confirmed bool) {
	if len(d.ver.judged) >= maxJudged {
		for k := range d.ver.judged {
			delete(d.ver.judged, k)
			break
		}
	}
	d.ver.judged[key] = confirmed
}
