package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zopeer/zopeer/zo"
)

// Snapshot sync (docs/PROTOCOL-WIRE.md §5.7). A donor serves one snapshot:
// weights in the canonical int32 layout (PROTOCOL.md §5.1) and the exact set
// of updates they include. A joiner asks donors what they serve (kind 5),
// fetches the weights in chunks (kind 6) from the donors that serve the same
// weights hash, resuming any chunk a donor fails to send from another, and
// decides itself whether to trust them (node: a quorum of announcements);
// p2p only moves bytes, bounded.

// Snapshot limits.
const (
	// MaxSnapshotChunk bounds one snapshot data frame.
	MaxSnapshotChunk = 1 << 20
	// maxSnapInfoSize bounds a snapshot info frame: the fixed part and the
	// update set, encoded as a digest.
	maxSnapInfoSize = 8 + 32 + 32 + 8 + MaxDigestSize
)

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	Count    uint64       // updates included: the sum of Included's range counts
	Digest   zo.SetDigest // set digest of the included updates and the exclusions
	Hash     [32]byte     // weights hash (PROTOCOL.md §7)
	Size     uint64       // bytes of weights: 4 × the layout's elements
	Included []Holding    // exactly the updates the weights include (Holding.Digest is 0)
	Excluded []uint64     // the machines excluded from the set
}

// Snapshots is what a donor serves snapshots from.
type Snapshots interface {
	// Snapshot describes the snapshot served now, if any.
	Snapshot() (SnapshotInfo, bool)
	// ReadSnapshot reads the weights bytes of the snapshot with weights hash
	// hash from offset off into b; 0 bytes and no error: not served (any more).
	ReadSnapshot(hash [32]byte, off uint64, b []byte) (int, error)
}

// encodeSnapInfo encodes an info frame; it fails if the set does not fit.
func encodeSnapInfo(in SnapshotInfo) ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, in.Count)
	b = append(b, in.Digest[:]...)
	b = append(b, in.Hash[:]...)
	b = binary.BigEndian.AppendUint64(b, in.Size)
	d := encodeDigest(in.Included, in.Excluded, maxSnapInfoSize)
	if hs, ex, err := decodeDigest(d); err != nil || len(hs) != len(in.Included) || len(ex) != len(in.Excluded) || len(d) > MaxDigestSize {
		return nil, errors.New("p2p: snapshot: the update set does not fit a digest frame")
	}
	return append(b, d...), nil
}

func decodeSnapInfo(b []byte) (SnapshotInfo, error) {
	var in SnapshotInfo
	if len(b) < 80 {
		return in, fmt.Errorf("%w: short snapshot info", ErrMalformed)
	}
	in.Count = binary.BigEndian.Uint64(b)
	copy(in.Digest[:], b[8:40])
	copy(in.Hash[:], b[40:72])
	in.Size = binary.BigEndian.Uint64(b[72:80])
	hs, ex, err := decodeDigest(b[80:])
	if err != nil {
		return in, err
	}
	var n uint64
	for _, h := range hs {
		if h.Digest != 0 {
			return in, fmt.Errorf("%w: snapshot set with a machine digest", ErrMalformed)
		}
		c := h.Samples.Count()
		if n+c < n {
			return in, fmt.Errorf("%w: snapshot count overflows", ErrMalformed)
		}
		n += c
	}
	if n != in.Count || in.Size%4 != 0 {
		return in, fmt.Errorf("%w: snapshot count %d or size %d disagrees with its set (%d updates)", ErrMalformed, in.Count, in.Size, n)
	}
	in.Included, in.Excluded = hs, ex
	return in, nil
}

// answerSnapshot writes the answer to a snapshot request.
func (p *Peer) answerSnapshot(w interface{ Write([]byte) (int, error) }, q SyncRequest) error {
	src := p.opts.Snapshots
	switch q.Kind {
	case kindSnapInfo:
		var body []byte
		if src != nil {
			if in, ok := src.Snapshot(); ok {
				var err error
				if body, err = encodeSnapInfo(in); err != nil {
					p.opts.Logger.Warn("p2p: not serving the snapshot", "err", err)
					body = nil
				}
			}
		}
		return writeFrame(w, body)
	default: // kindSnapData
		var buf []byte
		if src != nil {
			buf = make([]byte, MaxSnapshotChunk)
			n, err := src.ReadSnapshot(q.Hash, q.Offset, buf)
			if err != nil {
				return fmt.Errorf("p2p: snapshot read: %w", err)
			}
			buf = buf[:n]
		}
		return writeFrame(w, buf)
	}
}

// SnapshotOffer is what one donor serves.
type SnapshotOffer struct {
	From peer.ID
	Info SnapshotInfo
}

// SnapshotOffers asks up to SyncDonors donors what snapshot they serve and
// returns the answers that decode (a malformed one counts as a violation).
func (p *Peer) SnapshotOffers(ctx context.Context) []SnapshotOffer {
	if !p.enter() {
		return nil
	}
	defer p.wg.Done()
	ctx, cancel := p.roundContext(ctx)
	defer cancel()
	ids := p.syncPeers()
	offers := make([]*SnapshotOffer, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			s, r, err := p.syncStream(ctx, id, SyncRequest{Kind: kindSnapInfo})
			if err != nil {
				return
			}
			defer s.Close()
			body, err := readFrame(r, maxSnapInfoSize)
			if err != nil {
				p.countViolation(err)
				s.Reset()
				return
			}
			if len(body) == 0 {
				return
			}
			in, err := decodeSnapInfo(body)
			if err != nil {
				p.c.syncRejected.Add(1)
				s.Reset()
				p.opts.Logger.Debug("p2p: snapshot info", "peer", id, "err", err)
				return
			}
			offers[i] = &SnapshotOffer{From: id, Info: in}
		})
	}
	wg.Wait()
	var out []SnapshotOffer
	for _, o := range offers {
		if o != nil {
			out = append(out, *o)
		}
	}
	return out
}

// roundContext ends ctx when the peer stops, so Close never waits on a
// caller's context.
func (p *Peer) roundContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() { // exits when the caller cancels, at the latest
		select {
		case <-p.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

var errPeerClosed = errors.New("p2p: snapshot: the peer is closed")

// ErrSnapshotIncomplete means no donor could send some chunks.
var ErrSnapshotIncomplete = errors.New("p2p: snapshot: donors failed to send every chunk")

// FetchSnapshot fills dst (Size bytes) with the weights of the snapshot
// with weights hash hash, in chunks of MaxSnapshotChunk, one worker per donor
// in from. by[i] is the donor chunk i came from, "" while it is not held:
// chunks already held are skipped, and a chunk a donor fails to send exactly
// goes back for the others, so a caller resumes a failed fetch by calling
// again with the same dst and by (and, knowing who sent what, can tell whose
// bytes to doubt when the whole does not hash right). A donor that sends a
// short, long or empty chunk is asked nothing more.
func (p *Peer) FetchSnapshot(ctx context.Context, from []peer.ID, hash [32]byte, dst []byte, by []peer.ID) error {
	if !p.enter() {
		return errPeerClosed
	}
	defer p.wg.Done()
	ctx, cancel := p.roundContext(ctx)
	defer cancel()
	chunks := (len(dst) + MaxSnapshotChunk - 1) / MaxSnapshotChunk
	if len(by) != chunks {
		return fmt.Errorf("p2p: snapshot: %d chunk donors for %d chunks", len(by), chunks)
	}
	var mu sync.Mutex
	var todo []int
	for i := range chunks {
		if by[i] == "" {
			todo = append(todo, i)
		}
	}
	tried := make(map[int]map[peer.ID]bool)
	// A worker with nothing it may take waits while chunks are in flight:
	// one of them may fail and come back for it (else a failing donor's
	// chunk could be returned after every other worker had left).
	inflight := 0
	changed := sync.NewCond(&mu)
	take := func(id peer.ID) (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		for {
			for j, i := range todo {
				if !tried[i][id] {
					todo = append(todo[:j], todo[j+1:]...)
					inflight++
					return i, true
				}
			}
			if inflight == 0 {
				return 0, false
			}
			changed.Wait()
		}
	}
	var wg sync.WaitGroup
	for _, id := range from {
		wg.Go(func() {
			for ctx.Err() == nil {
				i, ok := take(id)
				if !ok {
					return
				}
				lo := i * MaxSnapshotChunk
				want := dst[lo:min(len(dst), lo+MaxSnapshotChunk)]
				err := p.fetchChunk(ctx, id, hash, uint64(lo), want)
				mu.Lock()
				if err == nil {
					by[i] = id
				} else {
					if tried[i] == nil {
						tried[i] = map[peer.ID]bool{}
					}
					tried[i][id] = true
					todo = append(todo, i)
				}
				inflight--
				changed.Broadcast()
				mu.Unlock()
				if err != nil {
					p.opts.Logger.Debug("p2p: snapshot chunk", "peer", id, "offset", lo, "err", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if slices.Contains(by, "") {
		return ErrSnapshotIncomplete
	}
	return nil
}

// fetchChunk reads one chunk into want, which it must fill exactly.
func (p *Peer) fetchChunk(ctx context.Context, id peer.ID, hash [32]byte, off uint64, want []byte) error {
	s, r, err := p.syncStream(ctx, id, SyncRequest{Kind: kindSnapData, Hash: hash, Offset: off})
	if err != nil {
		return err
	}
	defer s.Close()
	body, err := readFrame(r, MaxSnapshotChunk)
	if err != nil {
		p.countViolation(err)
		s.Reset()
		return err
	}
	if len(body) != len(want) {
		if len(body) != 0 {
			p.c.syncRejected.Add(1)
		}
		return fmt.Errorf("%w: snapshot chunk of %d bytes, want %d", errBogus, len(body), len(want))
	}
	copy(want, body)
	return nil
}
