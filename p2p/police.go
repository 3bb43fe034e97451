package p2p

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zopeer/zopeer/zo"
)

// Why a batch was refused: the keys of Stats.Refused.
const (
	ReasonMalformed    = "malformed"
	ReasonVersion      = "version"
	ReasonWrongRun     = "wrong_run"
	ReasonSignature    = "signature"
	ReasonBound        = "bound"
	ReasonSampleCap    = "sample_cap"
	ReasonNotAdmitted  = "not_admitted"
	ReasonPow          = "pow"
	ReasonBasis        = "basis"
	ReasonPool         = "pool"
	ReasonExcluded     = "excluded"
	ReasonRate         = "rate"
	ReasonEquivocation = "equivocation"
)

// reasonOf names the rule a decoding or admission error broke.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrVersion):
		return ReasonVersion
	case errors.Is(err, ErrWrongRun):
		return ReasonWrongRun
	case errors.Is(err, ErrSignature):
		return ReasonSignature
	case errors.Is(err, zo.ErrBound):
		return ReasonBound
	case errors.Is(err, zo.ErrSampleCap):
		return ReasonSampleCap
	case errors.Is(err, zo.ErrNotAdmitted):
		return ReasonNotAdmitted
	case errors.Is(err, errPow):
		return ReasonPow
	case errors.Is(err, errBasis):
		return ReasonBasis
	case errors.Is(err, zo.ErrPool):
		return ReasonPool
	}
	return ReasonMalformed
}

var errPow = errors.New("p2p: signer's key lacks the run's proof of work")

// Refused is a machine whose batches were refused, for the status.
type Refused struct {
	Machine string `json:"machine"` // 16 hex digits
	Reason  string `json:"reason"`  // the latest reason
	Count   uint64 `json:"count"`   // batches refused
}

// maxRefusedMachines bounds the machines the refusal record keeps; keys are
// free, so the rest are only counted by reason.
const maxRefusedMachines = 256

// police keeps the refusal counters, the per-author rate limits and the
// penalties that feed gossipsub's application score.
type police struct {
	mu       sync.Mutex
	reasons  map[string]uint64
	machines map[uint64]*Refused
	buckets  map[uint64]*bucket
	penalty  map[peer.ID]time.Time // penalised until
	pow      map[uint64]bool       // machines whose key was checked for proof of work
	rate     float64
	burst    float64
}

type bucket struct {
	tokens float64
	at     time.Time
	over   int // consecutive refusals
}

func newPolice(rate, burst float64) *police {
	return &police{
		reasons: map[string]uint64{}, machines: map[uint64]*Refused{}, buckets: map[uint64]*bucket{},
		penalty: map[peer.ID]time.Time{}, pow: map[uint64]bool{}, rate: rate, burst: burst,
	}
}

// refuse counts a refused batch of machine (0 when the signer is unknown).
func (c *police) refuse(machine uint64, known bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reasons[reason]++
	if !known {
		return
	}
	r := c.machines[machine]
	if r == nil {
		if len(c.machines) >= maxRefusedMachines {
			return
		}
		r = &Refused{Machine: machineHex(machine)}
		c.machines[machine] = r
	}
	r.Reason = reason
	r.Count++
}

// allow takes n updates from machine's bucket; false means over its rate.
// It reports whether the machine has been over its rate long enough to be
// penalised.
func (c *police) allow(machine uint64, n int, now time.Time) (ok, abusive bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buckets[machine]
	if b == nil {
		if len(c.buckets) >= maxStateMachines {
			for m, o := range c.buckets { // forget idle authors
				if now.Sub(o.at) > time.Minute {
					delete(c.buckets, m)
				}
			}
		}
		b = &bucket{tokens: c.burst, at: now}
		c.buckets[machine] = b
	}
	b.tokens = min(c.burst, b.tokens+now.Sub(b.at).Seconds()*c.rate)
	b.at = now
	if b.tokens < float64(n) {
		b.over++
		return false, b.over >= 16
	}
	b.tokens -= float64(n)
	b.over = 0
	return true, false
}

// powOK checks, once per machine, that the signer's key carries the proof of work.
func (c *police) powOK(run string, pub ed25519.PublicKey, machine uint64, bits int) bool {
	if bits == 0 {
		return true
	}
	c.mu.Lock()
	ok, seen := c.pow[machine]
	c.mu.Unlock()
	if seen {
		return ok
	}
	ok = PowBits(run, pub) >= bits
	c.mu.Lock()
	if len(c.pow) < maxStateMachines {
		c.pow[machine] = ok
	}
	c.mu.Unlock()
	return ok
}

// penalise scores the author of pub down for a while: gossipsub graylists it
// (its own messages and relays are ignored), wherever its batches come from.
func (c *police) penalise(pub ed25519.PublicKey, d time.Duration) {
	id, err := peerOf(pub)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.penalty) >= maxStateMachines {
		now := time.Now()
		for p, until := range c.penalty {
			if now.After(until) {
				delete(c.penalty, p)
			}
		}
	}
	c.penalty[id] = time.Now().Add(d)
}

// appScore is gossipsub's application-specific score of a peer.
func (c *police) appScore(id peer.ID) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.penalty[id]; ok && time.Now().Before(until) {
		return -1000
	}
	return 0
}

func (c *police) stats() (map[string]uint64, []Refused) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := make(map[string]uint64, len(c.reasons))
	for k, v := range c.reasons {
		rs[k] = v
	}
	ms := make([]Refused, 0, len(c.machines))
	for _, r := range c.machines {
		ms = append(ms, *r)
	}
	slices.SortFunc(ms, func(a, b Refused) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Machine, b.Machine))
	})
	return rs, ms
}

func peerOf(pub ed25519.PublicKey) (peer.ID, error) {
	k, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(k)
}

func machineHex(m uint64) string { return fmt.Sprintf("%016x", m) }
