package node

import (
	"context"
	"fmt"

	"github.com/zopeer/zopeer/model"
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
	gr := Gradients{Machine: machine, First: first, G: make([]float64, n), U: make([]float64, n)}
	for k := range n {
		if err := ctx.Err(); err != nil {
			return gr, err
		}
		sample := first + uint64(k)
		seqs := make([]model.Sequence, t.batchSize)
		for j := range seqs {
			r := t.train.Record(t.train.Sample(t.run, machine, sample*uint64(t.batchSize)+uint64(j)))
			seqs[j] = model.Sequence{Tokens: r.Tokens, LossFrom: r.LossStart}
		}
		seed := zo.DeriveSeed(t.run, machine, sample)
		r, err := t.eng.Step(model.Batch{Model: t.lm, Seqs: seqs}, seed)
		if err != nil {
			return gr, fmt.Errorf("node: machine %016x sample %d: %w", machine, sample, err)
		}
		gr.G[k], gr.U[k] = r.G, seed.CodeUniform()
		gr.Loss += (r.LossPlus + r.LossMinus) / 2 / float64(n)
	}
	return gr, nil
}

// LogOf shows a store to p2p as the log a peer validates against and serves
// from, exactly as the daemon does: for tools (the testnet's adversary) that
// track a run with a replica of their own.
func LogOf(s *store.Store) p2p.Log { return logAdapter{s} }

// EmptyLog is the log of a host that holds nothing.
func EmptyLog() p2p.Log { return emptyLog{} }
