package p2p

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Sync protocol limits. A peer that exceeds one is cut off.
const (
	// SyncProtocol is the libp2p protocol ID of the anti-entropy stream.
	SyncProtocol = "/zopeer/sync/2"
	// MaxFetch bounds the updates a donor sends for one fetch request; the
	// requester asks again for whatever is still missing.
	MaxFetch = 4096
	// MaxDigestSize bounds an encoded digest.
	MaxDigestSize = 4 << 20
	// MaxManifestSize bounds the run manifest a peer serves.
	MaxManifestSize = 64 << 10

	maxRequestSize = 1 + 8 + 1 + 32 + binary.MaxVarintLen64 // the largest: a snapshot chunk request
	// maxDigestRanges bounds the ranges in one digest, so decoding allocates
	// at most a few MiB whatever the sender claims.
	maxDigestRanges = MaxDigestSize / 2

	kindDigest   = 1
	kindFetch    = 2
	kindManifest = 3
	kindEvidence = 4
	kindSnapInfo = 5 // snapshot.go
	kindSnapData = 6

	// maxDigestExclusions bounds the excluded machines one digest lists.
	maxDigestExclusions = 4096
)

// SyncRequest is the single request on a sync stream.
type SyncRequest struct {
	Kind    byte
	Machine uint64   // fetch and evidence only
	Lo, Hi  uint64   // fetch only: the inclusive sample range wanted
	Hash    [32]byte // snapshot data only: the snapshot's weights hash
	Offset  uint64   // snapshot data only: the first byte wanted
}

func encodeRequest(run RunTag, q SyncRequest) []byte {
	b := make([]byte, 0, maxRequestSize)
	b = append(b, WireVersion)
	b = append(b, run[:]...)
	b = append(b, q.Kind)
	switch q.Kind {
	case kindFetch:
		b = binary.BigEndian.AppendUint64(b, q.Machine)
		b = binary.AppendUvarint(b, q.Lo)
		b = binary.AppendUvarint(b, q.Hi)
	case kindEvidence:
		b = binary.BigEndian.AppendUint64(b, q.Machine)
	case kindSnapData:
		b = append(b, q.Hash[:]...)
		b = binary.AppendUvarint(b, q.Offset)
	}
	return b
}

func decodeRequest(b []byte, run RunTag) (SyncRequest, error) {
	var q SyncRequest
	if len(b) < 10 {
		return q, fmt.Errorf("%w: short request", ErrMalformed)
	}
	if b[0] != WireVersion {
		return q, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	if RunTag(b[1:9]) != run {
		return q, ErrWrongRun
	}
	q.Kind = b[9]
	rest := b[10:]
	switch q.Kind {
	case kindDigest, kindManifest, kindSnapInfo:
	case kindSnapData:
		if len(rest) < 32 {
			return q, fmt.Errorf("%w: short snapshot request", ErrMalformed)
		}
		copy(q.Hash[:], rest)
		var err error
		if q.Offset, rest, err = uvarint(rest[32:]); err != nil {
			return q, err
		}
	case kindEvidence:
		if len(rest) < 8 {
			return q, fmt.Errorf("%w: short evidence request", ErrMalformed)
		}
		q.Machine, rest = binary.BigEndian.Uint64(rest), rest[8:]
	case kindFetch:
		if len(rest) < 8 {
			return q, fmt.Errorf("%w: short fetch", ErrMalformed)
		}
		q.Machine = binary.BigEndian.Uint64(rest)
		var err error
		if q.Lo, rest, err = uvarint(rest[8:]); err != nil {
			return q, err
		}
		if q.Hi, rest, err = uvarint(rest); err != nil {
			return q, err
		}
		if q.Lo > q.Hi {
			return q, fmt.Errorf("%w: empty fetch range", ErrMalformed)
		}
	default:
		return q, fmt.Errorf("%w: request kind %d", ErrMalformed, q.Kind)
	}
	if len(rest) != 0 {
		return q, fmt.Errorf("%w: trailing bytes", ErrMalformed)
	}
	return q, nil
}

// encodeDigest encodes what a log holds, as many machines as fit in limit
// bytes, then the machines it excluded (at most maxDigestExclusions).
// Machines must be strictly increasing and each machine's ranges valid and
// non-empty; Log implementations promise it.
func encodeDigest(hs []Holding, excluded []uint64, limit int) []byte {
	excluded = excluded[:min(len(excluded), maxDigestExclusions)]
	tail := binary.AppendUvarint(nil, uint64(len(excluded)))
	for _, m := range excluded {
		tail = binary.BigEndian.AppendUint64(tail, m)
	}
	var body []byte
	n := 0
	for _, h := range hs {
		e := binary.BigEndian.AppendUint64(nil, h.Machine)
		e = binary.BigEndian.AppendUint64(e, h.Digest)
		e = binary.AppendUvarint(e, uint64(len(h.Samples)))
		e = appendRanges(e, h.Samples)
		if binary.MaxVarintLen64+len(body)+len(e)+len(tail) > limit {
			break
		}
		body = append(body, e...)
		n++
	}
	return append(append(binary.AppendUvarint(nil, uint64(n)), body...), tail...)
}

func decodeDigest(b []byte) (hs []Holding, excl []uint64, err error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	// Every machine takes at least 19 bytes: a cheap bound before allocating.
	if n > uint64(len(b))/19 {
		return nil, nil, fmt.Errorf("%w: digest machine count", ErrMalformed)
	}
	hs = make([]Holding, 0, n)
	total := 0
	for i := uint64(0); i < n; i++ {
		if len(b) < 16 {
			return nil, nil, fmt.Errorf("%w: short digest", ErrMalformed)
		}
		m, dig := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
		if i > 0 && m <= hs[i-1].Machine {
			return nil, nil, fmt.Errorf("%w: digest machines out of order", ErrMalformed)
		}
		var nr uint64
		if nr, b, err = uvarint(b[16:]); err != nil {
			return nil, nil, err
		}
		if nr == 0 || nr > uint64(len(b))/2 || total+int(nr) > maxDigestRanges {
			return nil, nil, fmt.Errorf("%w: digest range count", ErrMalformed)
		}
		total += int(nr)
		var rs Ranges
		if rs, b, err = readRanges(b, nr); err != nil {
			return nil, nil, err
		}
		hs = append(hs, Holding{Machine: m, Samples: rs, Digest: dig})
	}
	ne, b, err := uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if ne > maxDigestExclusions || ne*8 != uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: digest exclusions", ErrMalformed)
	}
	excl = make([]uint64, ne)
	for i := range excl {
		excl[i] = binary.BigEndian.Uint64(b[8*i:])
		if i > 0 && excl[i] <= excl[i-1] {
			return nil, nil, fmt.Errorf("%w: digest exclusions out of order", ErrMalformed)
		}
	}
	return hs, excl, nil
}

// writeFrame writes a uvarint length and the body.
func writeFrame(w io.Writer, body []byte) error {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(body)), uint64(len(body)))
	_, err := w.Write(append(b, body...))
	return err
}

// readFrame reads one frame of at most limit bytes; a zero-length frame
// returns an empty, non-nil slice.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("p2p: read frame length: %w", err)
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrMalformed, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("p2p: read frame: %w", err)
	}
	return b, nil
}
