package node

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/zo"
)

// TestProSamplingWhatIf estimates, before any wiring, what FedKSeed-Pro's
// seed choice (docs/DESIGN.md, "FedKSeed-Pro: the wiring it takes") would
// gain over the uniform pool rule at the same K on the embedded task. It
// needs no new protocol: an update lands on pool seed k when its sample
// number's rule index is k, so a producer that wants seed k takes the next
// sample number whose index is k (about K hashes). Uniform runs are exactly
// `zopeer train --samples 16 --pool K` (Trainer.Step); Pro runs compute all
// 16 gradients of a step at one state, as Propose does, on the samples that
// land on the drawn seeds. A third arm draws seeds uniformly the same way,
// so that what differs from Pro is the weighting alone (the rule arm and
// the drawn-uniform arm differ only in which samples they use: their gap is
// the noise). A measurement, not a check: it runs only with
// ZOPEER_PRO_WHATIF=1.
//
//	ZOPEER_PRO_WHATIF=1 go test -run TestProSamplingWhatIf -v -timeout 60m ./node/
func TestProSamplingWhatIf(t *testing.T) {
	if os.Getenv("ZOPEER_PRO_WHATIF") != "1" {
		t.Skip("set ZOPEER_PRO_WHATIF=1 to measure FedKSeed-Pro's seed choice against the uniform rule")
	}
	ctx := context.Background()
	budgets := []int{400, 1600, 6400}
	const runs = 5
	arms := []string{"uniform (rule)", "uniform (drawn)", "pro"}
	var tb strings.Builder
	fmt.Fprintf(&tb, "| K | seed choice | %d | %d | %d |\n|---|---|---|---|---|\n", budgets[0], budgets[1], budgets[2])
	for _, k := range []uint32{256, 1024} {
		for arm, name := range arms {
			mean := make([]float64, len(budgets))
			lo, hi := make([]float64, len(budgets)), make([]float64, len(budgets))
			for r := range runs {
				s := Defaults
				s.Home = t.TempDir()
				s, err := s.WithEmbeddedDefault()
				if err != nil {
					t.Fatal(err)
				}
				s.Run, s.Samples, s.Pool = fmt.Sprintf("pool-learning-%d", r), 16, k
				run, err := openRun(ctx, s, nil, slog.New(slog.DiscardHandler), true)
				if err != nil {
					t.Fatal(err)
				}
				ps := newProState(k, uint64(r), arm == 2)
				for step, bi := 1, 0; bi < len(budgets); step++ {
					if arm > 0 {
						err = ps.step(ctx, run.Trainer)
					} else {
						_, err = run.Trainer.Step(ctx)
					}
					if err != nil {
						t.Fatal(err)
					}
					if step*16 == budgets[bi] {
						loss, _, err := run.Trainer.Eval(ctx)
						if err != nil {
							t.Fatal(err)
						}
						mean[bi] += loss / runs
						if r == 0 || loss < lo[bi] {
							lo[bi] = loss
						}
						hi[bi] = max(hi[bi], loss)
						bi++
					}
				}
				run.Close()
			}
			fmt.Fprintf(&tb, "| %d | %s |", k, name)
			for i := range budgets {
				fmt.Fprintf(&tb, " %.4f (%.4f–%.4f) |", mean[i], lo[i], hi[i])
			}
			tb.WriteString("\n")
			t.Logf("K=%d %s: %v", k, name, mean)
		}
	}
	t.Logf("mean (min–max) eval loss of %d runs after N updates:\n%s", runs, tb.String())
}

// proState is a producer's FedKSeed-Pro view: per pool seed, the updates
// it applied and the sum of their |ĝ| (with pro false it draws uniformly).
type proState struct {
	k      uint32
	pro    bool
	n      []uint64
	sum    []float64
	rng    *rand.Rand
	sample uint64 // the next free sample number
}

func newProState(k uint32, seed uint64, pro bool) *proState {
	return &proState{k: k, pro: pro, n: make([]uint64, k), sum: make([]float64, k), rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// probs is FedKSeed-Pro's rule: ψ_k the mean |ĝ| on seed k (unused seeds
// take the largest mean, so each gets tried), min-max normalised, then a
// softmax.
func (p *proState) probs() []float64 {
	lo, hi, seen := math.Inf(1), math.Inf(-1), false
	for i := range p.n {
		if p.n[i] > 0 {
			m := p.sum[i] / float64(p.n[i])
			lo, hi, seen = min(lo, m), max(hi, m), true
		}
	}
	out := make([]float64, p.k)
	if !p.pro {
		seen = false // every seed as the largest: uniform
	}
	var z float64
	for i := range out {
		v := 1.0 // unused: as the largest
		if seen && hi > lo && p.n[i] > 0 {
			v = (p.sum[i]/float64(p.n[i]) - lo) / (hi - lo)
		} else if seen && hi == lo {
			v = 0
		}
		out[i] = math.Exp(v)
		z += out[i]
	}
	for i := range out {
		out[i] /= z
	}
	return out
}

func (p *proState) draw(pr []float64) uint32 {
	u := p.rng.Float64()
	for i, q := range pr {
		if u -= q; u < 0 {
			return uint32(i)
		}
	}
	return p.k - 1
}

// step draws a seed per update, takes the samples that land on them, and
// computes, codes and applies them as Trainer.Propose and Commit do.
func (p *proState) step(ctx context.Context, tr *Trainer) error {
	cfg := tr.eng.Config()
	pr := p.probs()
	samples := make([]uint64, tr.samples)
	for i := range samples {
		want := p.draw(pr)
		for zo.PoolIndex(cfg.Run, tr.machine, p.sample, cfg.Pool) != want {
			p.sample++
		}
		samples[i] = p.sample
		p.sample++
	}
	g := make([]float64, len(samples))
	u := make([]float64, len(samples))
	for i, s := range samples {
		r, err := tr.eng.Step(model.Batch{Model: tr.lm, Seqs: tr.miniBatch(tr.machine, s)}, cfg.PerturbSeed(tr.machine, s))
		if err != nil {
			return err
		}
		g[i] = r.G
		u[i] = zo.DeriveSeed(cfg.Run, tr.machine, s).CodeUniform()
	}
	codes := make([]int8, len(samples))
	exp, err := zo.QuantizeBounded(g, u, codes, tr.bound)
	if err != nil {
		return err
	}
	us := make([]zo.Update, len(samples))
	for i, s := range samples {
		us[i] = zo.Update{Machine: tr.machine, Sample: s, Exp: exp, Code: codes[i]}
		k := zo.PoolIndex(cfg.Run, tr.machine, s, cfg.Pool)
		p.n[k]++
		p.sum[k] += math.Abs(us[i].Grad())
	}
	_, err = tr.Apply(ctx, nil, us)
	return err
}
