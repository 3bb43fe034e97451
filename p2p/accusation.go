package p2p

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// An accusation (evidence kind 2, docs/PROTOCOL-WIRE.md §6.1) says that one
// update of a public-data run's batch is not the projected gradient its
// basis, seed and minibatch give. Unlike equivocation it is not
// self-evident: every receiver re-computes the sample (PROTOCOL.md §11.4)
// before it bans the accused machine, and an accusation that does not hold
// up costs its signer.
const (
	evidenceAccusation = 2
	accusationDomain   = "zopeer/accusation/1"
)

// ErrNotAccusation reports an accusation that cannot be judged: its batch
// states no basis, names no accused sample, or accuses its own signer.
var ErrNotAccusation = errors.New("p2p: not a valid accusation")

// NewAccusation signs, with the accuser's key, the accusation that sample
// of the signed batch raw (a version 2 batch with a basis) is wrong.
func NewAccusation(key crypto.PrivKey, run RunTag, raw []byte, sample uint64) (*Evidence, error) {
	sk, err := ed25519Key(key)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 11+ed25519.PublicKeySize+2*binary.MaxVarintLen64+len(raw)+ed25519.SignatureSize)
	b = append(b, WireVersion)
	b = append(b, run[:]...)
	b = append(b, evidenceAccusation)
	b = append(b, sk.Public().(ed25519.PublicKey)...)
	b = binary.AppendUvarint(b, sample)
	b = binary.AppendUvarint(b, uint64(len(raw)))
	b = append(b, raw...)
	b = append(b, ed25519.Sign(sk, signed(accusationDomain, b))...)
	return DecodeEvidence(b, run)
}

// decodeAccusation parses the body after the kind byte of an accusation.
func decodeAccusation(data []byte, run RunTag) (*Evidence, error) {
	rest := data[10:]
	if len(rest) < ed25519.PublicKeySize+2+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: short accusation", ErrMalformed)
	}
	pub := ed25519.PublicKey(rest[:ed25519.PublicKeySize])
	sample, r, err := uvarint(rest[ed25519.PublicKeySize:])
	if err != nil {
		return nil, err
	}
	n, r, err := uvarint(r)
	if err != nil {
		return nil, err
	}
	if n > MaxBatchSize || n+ed25519.SignatureSize != uint64(len(r)) {
		return nil, fmt.Errorf("%w: accusation length", ErrMalformed)
	}
	b, err := DecodeBatch(r[:n], run)
	if err != nil {
		return nil, fmt.Errorf("p2p: accused batch: %w", err)
	}
	body := len(data) - ed25519.SignatureSize
	if !verifySig(pub, signed(accusationDomain, data[:body]), data[body:]) {
		return nil, ErrSignature
	}
	accuser := MachineOf(pub)
	switch {
	case sample < b.First || sample > b.Last():
		return nil, fmt.Errorf("%w: sample %d outside the batch %d..%d", ErrNotAccusation, sample, b.First, b.Last())
	case accuser == b.Machine:
		return nil, fmt.Errorf("%w: a machine accuses itself", ErrNotAccusation)
	}
	if _, ok := b.Ext(ExtBasis); !ok {
		return nil, fmt.Errorf("%w: the batch states no basis", ErrNotAccusation)
	}
	return &Evidence{
		Kind: evidenceAccusation, Machine: b.Machine, Sample: sample, A: b,
		Accuser: accuser, AccuserKey: pub, Raw: data,
	}, nil
}

// IsAccusation reports whether ev is an accusation (else equivocation).
func (ev *Evidence) IsAccusation() bool { return ev.Kind == evidenceAccusation }

// Basis returns the accused batch's basis (accusations only).
func (ev *Evidence) Basis() (Basis, error) {
	v, ok := ev.A.Ext(ExtBasis)
	if !ok {
		return nil, ErrNotAccusation
	}
	return DecodeBasis(v)
}

// maxRejectedAccusations is how many of a machine's accusations may be
// rejected before this peer ignores the rest: each one costs every peer two
// forward passes, so a false accuser gets few.
const maxRejectedAccusations = 3

// maxAccusers bounds the accusers whose rejections are remembered; beyond it
// new accusers start from zero (keys cost proof of work in open runs).
const maxAccusers = 1 << 14

// RejectAccusation records that ev, an accusation, did not hold up when this
// peer re-computed it: its signer is scored down (gossipsub application
// score, as a flooding author is) and, after maxRejectedAccusations
// rejections, its accusations are ignored. It reports whether the accuser
// is now ignored.
func (p *Peer) RejectAccusation(ev *Evidence) bool {
	p.pol.penalise(ev.AccuserKey, penaltyTime)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.rejected[ev.Accuser]; !ok && len(p.rejected) >= maxAccusers {
		return false
	}
	p.rejected[ev.Accuser]++
	return p.rejected[ev.Accuser] >= maxRejectedAccusations
}

// Accusations relayed per accuser: a token bucket of accusationBurst
// refilled at accusationRate per second. Each accusation costs every peer
// bandwidth and (queue permitting) two forward passes; an honest peer
// accuses rarely (one confirmed accusation bans the liar).
const (
	accusationRate  = 0.2
	accusationBurst = 8
)

type accuserBucket struct {
	tokens float64
	at     time.Time
}

// allowAccusation takes a token from machine's accusation bucket; false
// means over its rate (the validator then ignores the accusation and
// scores its accuser down).
func (p *Peer) allowAccusation(machine uint64, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.accBuckets[machine]
	if b == nil {
		if len(p.accBuckets) >= maxAccusers {
			for m, old := range p.accBuckets { // forget one full (idle) bucket
				if old.tokens+now.Sub(old.at).Seconds()*accusationRate >= accusationBurst {
					delete(p.accBuckets, m)
					break
				}
			}
			if len(p.accBuckets) >= maxAccusers {
				return false
			}
		}
		b = &accuserBucket{tokens: accusationBurst, at: now}
		p.accBuckets[machine] = b
	}
	b.tokens = min(accusationBurst, b.tokens+now.Sub(b.at).Seconds()*accusationRate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// accuserIgnored reports whether machine's accusations are ignored.
func (p *Peer) accuserIgnored(machine uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rejected[machine] >= maxRejectedAccusations
}
