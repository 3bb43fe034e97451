package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zopeer/zopeer/node"
)

type stderrKey struct{}

// stderrOf returns the stderr run was given (os.Stderr outside run).
func stderrOf(ctx context.Context) io.Writer {
	if w, ok := ctx.Value(stderrKey{}).(io.Writer); ok {
		return w
	}
	return os.Stderr
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// progressBar reports long work on w: a bar with rate and ETA redrawn in
// place on a terminal, a summary line every lineEvery otherwise.
func progressBar(w io.Writer) func(node.Progress) {
	return newProgress(w, isTerminal(w), time.Now).report
}

// Redraw and line intervals.
const (
	drawEvery = 200 * time.Millisecond
	lineEvery = 10 * time.Second
)

type progress struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	mu    sync.Mutex
	task  string
	start time.Time
	first uint64 // Done at the first report, for the rate
	last  time.Time
}

func newProgress(w io.Writer, tty bool, now func() time.Time) *progress {
	return &progress{w: w, tty: tty, now: now}
}

func (p *progress) report(r node.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if r.Task != p.task {
		p.task, p.start, p.first, p.last = r.Task, now, r.Done, time.Time{}
	}
	el := now.Sub(p.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 && r.Done > p.first {
		rate = float64(r.Done-p.first) / s
	}
	if r.Finished {
		if p.tty {
			fmt.Fprintf(p.w, "\r\033[K")
		}
		fmt.Fprintf(p.w, "%s: done, %s in %s\n", r.Task, amount(r.Done, r.Unit), el.Round(100*time.Millisecond))
		p.task = ""
		return
	}
	every := lineEvery
	if p.tty {
		every = drawEvery
	}
	if !p.last.IsZero() && now.Sub(p.last) < every {
		return
	}
	p.last = now
	eta := "?"
	if rate > 0 && r.Total >= r.Done && r.Total > 0 {
		eta = (time.Duration(float64(r.Total-r.Done)/rate) * time.Second).Round(time.Second).String()
	}
	if !p.tty {
		if r.Total > 0 {
			fmt.Fprintf(p.w, "%s: %s of %d (%.0f%%), %s/s, ETA %s\n", r.Task, amount(r.Done, r.Unit), r.Total,
				100*float64(r.Done)/float64(r.Total), count(rate), eta)
		} else {
			fmt.Fprintf(p.w, "%s: %s, %s/s\n", r.Task, amount(r.Done, r.Unit), count(rate))
		}
		return
	}
	const width = 30
	bar := strings.Repeat("·", width)
	if r.Total > 0 {
		k := min(width, int(width*r.Done/r.Total))
		bar = strings.Repeat("█", k) + strings.Repeat("·", width-k)
		fmt.Fprintf(p.w, "\r\033[K%-8s %s %s/%s %s/s ETA %s", r.Task, bar, count(float64(r.Done)), count(float64(r.Total)), count(rate), eta)
	} else {
		fmt.Fprintf(p.w, "\r\033[K%-8s %s %s/s", r.Task, amount(r.Done, r.Unit), count(rate))
	}
}

func amount(n uint64, unit string) string {
	if unit == "" {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// count writes n with a k/M suffix.
func count(n float64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", n/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", n/1e3)
	default:
		return fmt.Sprintf("%.0f", n)
	}
}
