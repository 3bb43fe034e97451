package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/zopeer/zopeer/zo"
)

// DefaultReplayBatch is how many updates Replay hands Engine.Apply at once:
// the engine makes one pass over the weights per call, so larger batches
// amortise memory traffic.
const DefaultReplayBatch = 64

// poolReplayBatch is how many updates a pool-mode replay sums at once (the
// summing runs in parallel over the batch; the weights are touched once, at the end).
const poolReplayBatch = 8192

// ReplayOptions tunes Replay.
type ReplayOptions struct {
	Batch    int  // updates per Engine.Apply; DefaultReplayBatch if 0
	FromBase bool // ignore checkpoints and apply the whole log (to verify them)
	// Only, if not nil, limits the rebuild to these updates (all logged):
	// checkpoints are used only if they include none outside it. A
	// snapshot's background check replays exactly the snapshot's set.
	Only     Summary
	Progress func(ReplayProgress) // called after every batch, from Replay's goroutine
}

// ReplayProgress reports how far a replay is and how fast it goes.
type ReplayProgress struct {
	Applied, Total uint64 // updates applied so far, and to apply in all
	Elapsed        time.Duration
	UpdatesPerSec  float64
	ElementsPerSec float64 // weight elements updated per second (updates × trainable elements)
}

// ReplayResult says how the weights were rebuilt.
type ReplayResult struct {
	Checkpoint uint64       // ID of the checkpoint replay started from; 0 for the base weights
	Skipped    []error      // checkpoints passed over, newest first, and why
	Included   Summary      // exactly the updates the weights now include
	Digest     zo.SetDigest // set digest of Included (zero with ReplayOptions.Only)
	Hash       [32]byte
	Verified   int // recorded hashes the weights were checked against and matched
	ReplayProgress
}

// Replay rebuilds the current weights into e, which must hold the base
// weights of the store's run: it loads the newest valid checkpoint, applies
// every logged update the checkpoint does not include, and checks the weights
// hash against every hash recorded for the same set of updates. Checkpoints
// that are missing, corrupt, of another run or that claim updates the log
// lacks are skipped, ending at the base weights if none is valid.
//
// The log is read from one snapshot; updates appended meanwhile are not
// applied, and the caller learns what was from Included. Float32 views are
// synced before Replay returns. After an error e's weights may be partly
// rebuilt: rebuild e from the base weights before trying again.
func (s *Store) Replay(ctx context.Context, e *zo.Engine, o ReplayOptions) (ReplayResult, error) {
	var res ReplayResult
	if !s.g.enter() {
		return res, ErrClosed
	}
	defer s.g.exit()
	batch := o.Batch
	if batch <= 0 {
		batch = DefaultReplayBatch
	}
	// One snapshot, taken with Append excluded, so the count, the summary and
	// the iterated log agree.
	s.mu.Lock()
	txn := s.db.NewTransaction(false)
	logged, count := s.sum.Clone(), s.count
	res.Digest = s.dig
	s.mu.Unlock()
	defer txn.Discard()
	if o.Only != nil {
		if !o.Only.SubsetOf(logged) {
			return res, fmt.Errorf("store: replay: %w: the set to rebuild is not all logged", ErrNotLogged)
		}
		logged, count, res.Digest = o.Only, o.Only.Count(), zo.SetDigest{}
	}
	cks, err := listCkpts(txn)
	if err != nil {
		return res, err
	}
	w := e.Weights()
	res.Included = Summary{}
	if !o.FromBase {
		for _, c := range slices.Backward(cks) {
			if !c.Included.SubsetOf(logged) {
				res.Skipped = append(res.Skipped, fmt.Errorf("%w (checkpoint %d)", ErrNotLogged, c.ID))
				continue
			}
			if err := s.readCkpt(ctx, c, nil); err != nil {
				if ctx.Err() != nil {
					return res, fmt.Errorf("store: replay: %w", ctx.Err())
				}
				s.log.Warn("skipping checkpoint", "id", c.ID, "err", err)
				res.Skipped = append(res.Skipped, err)
				continue
			}
			if err := s.readCkpt(ctx, c, w); err != nil {
				return res, fmt.Errorf("store: replay: loading verified checkpoint %d: %w", c.ID, err)
			}
			if h := w.Hash(); h != c.Hash {
				return res, fmt.Errorf("%w: checkpoint %d loads to weights hash %x, recorded %x", ErrCorrupt, c.ID, h[:8], c.Hash[:8])
			}
			w.SyncViews() // Q was overwritten: refresh the views and the engine's bound on |Q|
			res.Checkpoint, res.Included, res.Verified = c.ID, c.Included.Clone(), 1
			break
		}
	}

	var elems uint64
	for _, t := range w.Tensors {
		if t.Trainable {
			elems += uint64(t.Len())
		}
	}
	res.Total = count - res.Included.Count()
	start := time.Now()
	progress := func() {
		res.Elapsed = time.Since(start)
		if sec := res.Elapsed.Seconds(); sec > 0 {
			res.UpdatesPerSec = float64(res.Applied) / sec
			res.ElementsPerSec = float64(res.Applied) * float64(elems) / sec
		}
		if o.Progress != nil {
			o.Progress(res.ReplayProgress)
		}
	}
	// A pool-mode run sums every update's coefficients per pool seed and
	// perturbs once per pool seed at the end (docs/PROTOCOL.md §12): the cost
	// is K passes at most, whatever the log's length.
	var sums *zo.PoolSums
	if e.Config().Pool > 0 {
		sums = e.NewPoolSums()
		batch = max(batch, poolReplayBatch)
	}
	buf := make([]zo.Update, 0, batch)
	flush := func() {
		if sums != nil {
			sums.Add(buf)
		} else {
			e.Apply(buf)
		}
		for _, u := range buf {
			res.Included.Add(u.Machine, u.Sample)
		}
		res.Applied += uint64(len(buf))
		buf = buf[:0]
		progress()
	}
	skip := res.Included.Clone() // the loop adds to res.Included; test against the checkpoint's set
	var scanErr error
	s.scanUpdates(ctx, txn, Key{}, func(u zo.Update, err error) bool {
		if err != nil {
			scanErr = err
			return false
		}
		if skip.Contains(u.Machine, u.Sample) || o.Only != nil && !o.Only.Contains(u.Machine, u.Sample) {
			return true
		}
		buf = append(buf, u)
		if len(buf) == batch {
			flush()
		}
		return true
	})
	if scanErr != nil {
		return res, scanErr
	}
	if len(buf) > 0 {
		flush()
	}
	if sums != nil {
		e.ApplySums(sums)
	}
	progress()
	if res.Applied != res.Total {
		return res, fmt.Errorf("%w: replay applied %d updates, log summary expected %d", ErrCorrupt, res.Applied, res.Total)
	}
	w.SyncViews()
	res.Hash = w.Hash()
	for _, c := range cks {
		if c.ID == res.Checkpoint || !c.Included.Equal(res.Included) {
			continue
		}
		if c.Hash != res.Hash {
			return res, fmt.Errorf("%w: replayed weights hash %x, checkpoint %d recorded %x for the same updates", ErrCorrupt, res.Hash[:8], c.ID, c.Hash[:8])
		}
		res.Verified++
	}
	return res, nil
}
