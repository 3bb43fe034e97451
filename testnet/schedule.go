package testnet

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Schedule is the events of a run besides training: churn and late joiners.
type Schedule struct {
	Churn   int // kill -9 a random live peer, restart it 0.3–1.5 s later
	Late    int // peers started mid-run
	Steps   int // each peer's budget, for the restarts' --steps
	Samples int // updates per step
	Seed    uint64
}

// Run performs the events, each once the peers' own updates reach a random
// point of its slice of the run's planned total, reports them to out, and
// returns them as chart marks. A restarted peer gets the steps its log says it
// has left.
func (c Schedule) Run(ctx context.Context, n *Net, out io.Writer) ([]Mark, error) {
	rng := rand.New(rand.NewPCG(c.Seed, 0x7e57))
	type event struct {
		at   float64
		join bool
	}
	var evs []event
	// Spread over the run: churn in [10%, 80%] of the planned updates, joins
	// in [10%, 60%], each at a random point of its own slot.
	for i := range c.Churn {
		evs = append(evs, event{at: 0.1 + 0.7*(float64(i)+rng.Float64())/float64(c.Churn)})
	}
	for i := range c.Late {
		evs = append(evs, event{at: 0.1 + 0.5*(float64(i)+rng.Float64())/float64(c.Late), join: true})
	}
	slices.SortFunc(evs, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	total := float64((len(n.Nodes()) + c.Late) * c.Steps * c.Samples)
	var marks []Mark
	for _, ev := range evs {
		for {
			var own uint64
			for _, nd := range n.Nodes() {
				own += n.Acked(nd)
			}
			if float64(own) >= ev.at*total {
				break
			}
			n.Poll(ctx)
			select {
			case <-ctx.Done():
				return marks, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		if ev.join {
			nd, err := n.Add(ctx)
			if err != nil {
				return marks, err
			}
			fmt.Fprintf(out, "+ %s joined late\n", nd.Name)
			marks = append(marks, Mark{Elapsed: n.Elapsed(), Label: "start " + nd.Name})
			continue
		}
		var live []*Node
		for _, nd := range n.Nodes() {
			if nd.Alive() {
				live = append(live, nd)
			}
		}
		victim := live[rng.IntN(len(live))]
		victim.Kill()
		acked := n.Acked(victim)
		logged, err := n.OwnLogged(ctx, victim)
		if err != nil {
			return marks, err
		}
		marks = append(marks, Mark{Elapsed: n.Elapsed(), Label: "kill " + victim.Name})
		down := time.Duration(300+rng.IntN(1200)) * time.Millisecond
		select {
		case <-ctx.Done():
			return marks, ctx.Err()
		case <-time.After(down):
		}
		// It resumes after its last logged sample; give it the steps it has
		// left (at least one, since --steps 0 would mean no limit).
		left := max(1, c.Steps-int(logged)/c.Samples)
		if err := n.Restart(ctx, victim, "--steps", strconv.Itoa(left)); err != nil {
			return marks, err
		}
		fmt.Fprintf(out, "! %s: kill -9 with %d own updates logged (%d reported), restarted %v later for %d more steps\n", victim.Name, logged, acked, down, left)
		marks = append(marks, Mark{Elapsed: n.Elapsed(), Label: "restart " + victim.Name})
	}
	return marks, nil
}
