package p2p

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
)

// Evidence convicts a machine of equivocation: two batches, both validly
// signed by its key, that give one (machine, sample) two different values.
// It needs no signature of its own and no trust in whoever relays it: any
// peer checks it from its bytes alone, and every peer that holds it excludes
// the machine (docs/PROTOCOL-WIRE.md §6).
//
// An accusation (IsAccusation) is the other kind: A is the accused batch, B
// is nil, Sample the accused sample, and Accuser the machine that signed it.
type Evidence struct {
	Kind    byte // evidenceEquivocation or evidenceAccusation
	Machine uint64
	Sample  uint64 // the first sample the two batches disagree on; the accused sample
	A, B    *Batch // A.Raw < B.Raw bytewise
	Raw     []byte

	Accuser    uint64 // accusations: the signer's machine
	AccuserKey ed25519.PublicKey
}

const (
	evidenceEquivocation = 1
	// MaxEvidenceSize bounds an encoded evidence message.
	// (two batches, or an accusation: key, sample, one batch, signature).
	MaxEvidenceSize = 1 + 8 + 1 + 2*(binary.MaxVarintLen64+MaxBatchSize)
)

// ErrNotEvidence reports evidence that proves nothing: the batches agree, or
// are not of one machine.
var ErrNotEvidence = errors.New("p2p: not evidence of equivocation")

// NewEvidence builds the evidence that two signed batches (raw wire bytes)
// conflict. It verifies both, as DecodeEvidence would.
func NewEvidence(run RunTag, x, y []byte) (*Evidence, error) {
	if bytes.Compare(x, y) > 0 {
		x, y = y, x
	}
	raw := make([]byte, 0, 10+2*binary.MaxVarintLen64+len(x)+len(y))
	raw = append(raw, WireVersion)
	raw = append(raw, run[:]...)
	raw = append(raw, evidenceEquivocation)
	raw = binary.AppendUvarint(raw, uint64(len(x)))
	raw = append(raw, x...)
	raw = binary.AppendUvarint(raw, uint64(len(y)))
	raw = append(raw, y...)
	return DecodeEvidence(raw, run)
}

// DecodeEvidence parses and verifies evidence of run: two distinct, validly
// signed batches of one machine, in canonical order, that disagree on a sample.
func DecodeEvidence(data []byte, run RunTag) (*Evidence, error) {
	if len(data) > MaxEvidenceSize || len(data) < 10 {
		return nil, fmt.Errorf("%w: evidence of %d bytes", ErrMalformed, len(data))
	}
	if data[0] != WireVersion {
		return nil, fmt.Errorf("%w: %d", ErrVersion, data[0])
	}
	if RunTag(data[1:9]) != run {
		return nil, ErrWrongRun
	}
	switch data[9] {
	case evidenceEquivocation:
	case evidenceAccusation:
		return decodeAccusation(data, run)
	default:
		return nil, fmt.Errorf("%w: evidence kind %d", ErrMalformed, data[9])
	}
	rest := data[10:]
	var parts [2]*Batch
	for i := range parts {
		n, r, err := uvarint(rest)
		if err != nil {
			return nil, err
		}
		if n > uint64(len(r)) || n > MaxBatchSize {
			return nil, fmt.Errorf("%w: evidence batch length", ErrMalformed)
		}
		if parts[i], err = DecodeBatch(r[:n], run); err != nil {
			return nil, fmt.Errorf("p2p: evidence batch: %w", err)
		}
		rest = r[n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrMalformed)
	}
	a, b := parts[0], parts[1]
	if bytes.Compare(a.Raw, b.Raw) >= 0 {
		return nil, fmt.Errorf("%w: batches not in canonical order", ErrMalformed)
	}
	if a.Machine != b.Machine {
		return nil, fmt.Errorf("%w: batches of two machines", ErrNotEvidence)
	}
	s, ok := firstDisagreement(a, b)
	if !ok {
		return nil, ErrNotEvidence
	}
	return &Evidence{Kind: evidenceEquivocation, Machine: a.Machine, Sample: s, A: a, B: b, Raw: data}, nil
}

// firstDisagreement returns the first sample both batches carry with
// different values: (exp, code), and the pool slot (one batch carrying a
// slot and the other none, or two slots, differ).
func firstDisagreement(a, b *Batch) (uint64, bool) {
	lo, hi := max(a.First, b.First), min(a.Last(), b.Last())
	for s := lo; s <= hi && lo <= hi; s++ {
		if !a.Update(int(s - a.First)).SameValue(b.Update(int(s - b.First))) {
			return s, true
		}
		if s == hi {
			break
		}
	}
	return 0, false
}
