package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// HolePunch counts DCUtR hole punches this peer took part in (either
// side): started, ended with a direct connection, ended without one, and
// the last failure. A punch fails where a NAT maps each destination to
// another port (docs/PROTOCOL-WIRE.md, network layer).
type HolePunch struct {
	Started   uint64 `json:"started"`
	Succeeded uint64 `json:"succeeded"`
	Failed    uint64 `json:"failed"`
	LastError string `json:"last_error,omitempty"`
}

// punchTracer is the hole-punch service's event tracer.
type punchTracer struct {
	mu sync.Mutex
	hp HolePunch
}

var _ holepunch.EventTracer = (*punchTracer)(nil)

func (t *punchTracer) Trace(e *holepunch.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev := e.Evt.(type) {
	case *holepunch.StartHolePunchEvt:
		t.hp.Started++
	case *holepunch.EndHolePunchEvt:
		if ev.Success {
			t.hp.Succeeded++
		} else {
			t.hp.Failed++
			t.hp.LastError = ev.Error
		}
	}
}

func (t *punchTracer) get() HolePunch {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hp
}
