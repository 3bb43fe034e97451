package node

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
)

// SweepPoint is one (η, ε) pair of a sweep: the eval loss after the same
// short run from the base weights, and the median |ĝ| of the base's first
// projected gradients at that ε.
type SweepPoint struct {
	LR, Eps      float64
	Before       float64 // eval loss of the base weights
	After        float64 // eval loss after the run; NaN or +Inf when it diverged
	MedianAbsG   float64 // median |ĝ| over the first step's samples at the base
	UpdatesTried int     // updates the run applied
}

// Sweep runs s.Steps steps (of s.Samples updates) from the base weights for
// every pair of lrs × epss, in memory (nothing is written under s.Home), and
// returns the points in the order given. A run whose loss stops being finite
// ends early with After = +Inf.
func Sweep(ctx context.Context, s Settings, lrs, epss []float64, log *slog.Logger) ([]SweepPoint, error) {
	if s.Steps < 1 {
		return nil, fmt.Errorf("node: sweep: --steps must be ≥ 1")
	}
	s.Home, s.GradBound = "", 0
	var out []SweepPoint
	for _, eps := range epss {
		for _, lr := range lrs {
			s.LR, s.Eps = lr, eps
			p, err := sweepOne(ctx, s)
			if err != nil {
				return out, err
			}
			log.Info("sweep", "lr", lr, "eps", eps, "eval_before", p.Before, "eval_after", p.After, "median_abs_g", p.MedianAbsG)
			out = append(out, p)
		}
	}
	return out, nil
}

func sweepOne(ctx context.Context, s Settings) (SweepPoint, error) {
	p := SweepPoint{LR: s.LR, Eps: s.Eps}
	run, err := openRun(ctx, s, nil, slog.New(slog.DiscardHandler), true)
	if err != nil {
		return p, err
	}
	defer run.Close()
	tr := run.Trainer
	if p.Before, _, err = tr.Eval(ctx); err != nil {
		return p, err
	}
	g, _, err := tr.Gradients(ctx, 0, s.Samples)
	if err != nil {
		return p, err
	}
	for i, v := range g {
		g[i] = math.Abs(v)
	}
	slices.Sort(g)
	p.MedianAbsG = g[len(g)/2]
	for range s.Steps {
		res, err := tr.Step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return p, ctx.Err()
			}
			p.After = math.Inf(1) // non-finite losses: diverged
			return p, nil
		}
		p.UpdatesTried += len(res.Codes)
	}
	if p.After, _, err = tr.Eval(ctx); err != nil {
		return p, err
	}
	if math.IsNaN(p.After) {
		p.After = math.Inf(1)
	}
	return p, nil
}
