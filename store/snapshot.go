package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/zopeer/zopeer/zo"
)

// ReadCheckpointWeights reads checkpoint c's weights, the canonical int32
// layout (every tensor's Q, little-endian, in layout order: docs/PROTOCOL.md
// §5.1), from byte off into b, for serving it as a snapshot. It returns 0
// at or past the end. It does not verify the file (the reader of a snapshot
// checks the weights hash itself).
func (s *Store) ReadCheckpointWeights(c CheckpointInfo, off int64, b []byte) (int, error) {
	if !s.g.enter() {
		return 0, ErrClosed
	}
	defer s.g.exit()
	f, size, err := s.cks.open(c.File)
	if err != nil {
		return 0, fmt.Errorf("store: checkpoint %d: %w", c.ID, err)
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return 0, fmt.Errorf("store: checkpoint %d: file cannot be read at offsets", c.ID)
	}
	var pre [12]byte
	if _, err := ra.ReadAt(pre[:], 0); err != nil {
		return 0, fmt.Errorf("store: checkpoint %d: %w", c.ID, err)
	}
	start := 12 + int64(binary.LittleEndian.Uint32(pre[8:]))
	end := size - 32
	if off < 0 || start+off >= end {
		return 0, nil
	}
	n, err := ra.ReadAt(b[:min(int64(len(b)), end-start-off)], start+off)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("store: checkpoint %d: %w", c.ID, err)
	}
	return n, nil
}

// DigestOf is the set digest (zo.SetDigest) of the logged updates in
// included, plus the exclusion terms of excluded: what a peer announces
// when it holds exactly that set. Every update in included must be logged.
func (s *Store) DigestOf(ctx context.Context, included Summary, excluded []uint64) (zo.SetDigest, error) {
	var d zo.SetDigest
	if !s.g.enter() {
		return d, ErrClosed
	}
	defer s.g.exit()
	for _, m := range excluded {
		d.AddHash(zo.ExclusionHash(m))
	}
	for m, rs := range included {
		s.mu.Lock()
		whole, md := slices.Equal(rs, s.sum[m]), s.mdig[m]
		s.mu.Unlock()
		if whole { // the machine's whole log: its digest is kept
			d.AddHash(md)
			continue
		}
		for _, r := range rs {
			for x := r.First; ; x++ {
				if err := ctx.Err(); err != nil {
					return d, fmt.Errorf("store: digest: %w", err)
				}
				u, ok, err := s.Get(m, x)
				if err != nil {
					return d, err
				}
				if !ok {
					return d, fmt.Errorf("%w: machine %016x sample %d", ErrNotLogged, m, x)
				}
				d.Add(u)
				if x == r.Last {
					break
				}
			}
		}
	}
	return d, nil
}
