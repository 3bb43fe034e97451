package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/zopeer/zopeer/node"
)

// floatList is a comma-separated list of positive numbers.
type floatList []float64

func (l *floatList) String() string {
	var s []string
	for _, v := range *l {
		s = append(s, strconv.FormatFloat(v, 'g', -1, 64))
	}
	return strings.Join(s, ",")
}

func (l *floatList) Set(v string) error {
	*l = nil
	for _, x := range strings.Split(v, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a positive number", x)
		}
		*l = append(*l, f)
	}
	return nil
}

func sweepCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	s := node.Defaults
	runFlags(fs, &s)
	localFlags(fs, &s)
	s.Steps = 20
	fs.IntVar(&s.Steps, "steps", s.Steps, "steps of each short run")
	lrs := floatList{1e-5, 3e-5, 1e-4, 3e-4, 1e-3}
	epss := floatList{node.Defaults.Eps}
	fs.Var(&lrs, "lrs", "learning rates η to try (comma-separated)")
	fs.Var(&epss, "epss", "perturbation scales ε to try (comma-separated)")
	return func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", args)}
		}
		if s.Steps < 1 || s.Samples < 1 || len(lrs) == 0 || len(epss) == 0 {
			return usageError{errors.New("--steps and --samples must be ≥ 1, --lrs and --epss non-empty")}
		}
		s, err := s.WithEmbeddedDefault()
		if err != nil {
			return usageError{err}
		}
		ps, err := node.Sweep(ctx, s, lrs, epss, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d steps × %d updates from the base weights, batch %d\n\n%-10s %-10s %-12s %-12s %s\n",
			s.Steps, s.Samples, s.BatchSize, "lr", "eps", "eval before", "eval after", "median |g| at base")
		best := -1
		for i, p := range ps {
			fmt.Fprintf(out, "%-10g %-10g %-12.4f %-12.4f %.4g\n", p.LR, p.Eps, p.Before, p.After, p.MedianAbsG)
			if p.After < p.Before && (best < 0 || p.After < ps[best].After) {
				best = i
			}
		}
		if best < 0 {
			fmt.Fprintln(out, "\nno pair lowered the eval loss: try smaller --lrs or more --steps")
			return nil
		}
		b := ps[best]
		fmt.Fprintf(out, "\nlowest eval loss: --lr %g --eps %g (%.4f → %.4f)", b.LR, b.Eps, b.Before, b.After)
		if best%len(lrs) == len(lrs)-1 {
			fmt.Fprint(out, "; it is the largest η tried: extend --lrs upwards")
		}
		fmt.Fprintln(out, "\nfor long runs take the best η or half of it: the best η of a short run can diverge later (docs/LEARNING.md)")
		return nil
	}
}
