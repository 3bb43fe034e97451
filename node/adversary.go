package node

import (
	"context"

	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// Gradients are the uncoded projected gradients of n consecutive samples of
// one machine, at the trainer's current weights.
type Gradients struct {
	Machine uint64
	First   uint64
	G       []float64 // projected gradient of sample First+k
	U       []float64 // its coding uniform (zo.Seed.CodeUniform)
	Loss    float64   // mean of (L+ + L−)/2: the training loss
}

// GradientsOf estimates the projected gradients of samples first..first+n-1
// of machine, exactly as that machine's honest Propose would (same records,
// same seeds), without coding, logging or applying anything. It is a test
// hook: the testnet's adversary (testnet/cmd/adversary) tracks a run like a
// peer and codes what it publishes otherwise (gradient ascent). Honest peers
// never call it.
func (t *Trainer) GradientsOf(ctx context.Context, machine, first uint64, n int) (Gradients, error) {
	g, loss, err := t.gradients(ctx, machine, first, n, nil)
	if err != nil {
		return Gradients{}, err
	}
	gr := Gradients{Machine: machine, First: first, G: g, U: make([]float64, n), Loss: loss}
	for k := range gr.U {
		gr.U[k] = zo.DeriveSeed(t.run, machine, first+uint64(k)).CodeUniform()
	}
	return gr, nil
}

// LogOf shows a store to p2p as the log a peer validates against and serves
// from, exactly as the daemon does: for tools (the testnet's adversary) that
// track a run with a replica of their own.
func LogOf(s *store.Store) p2p.Log { return logAdapter{s} }

// EmptyLog is the log of a host that holds nothing.
func EmptyLog() p2p.Log { return emptyLog{} }
