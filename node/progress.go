package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/zopeer/zopeer/store"
)

// Progress is one report on long work: model load, replay, catch-up, export.
// Total 0 means the amount is not known (a spinner, not a bar).
type Progress struct {
	Task     string // "load", "replay", "catch-up", "export"
	Done     uint64
	Total    uint64
	Unit     string // "updates", "bytes", ""
	Finished bool   // the last report of the task
}

type progressKey struct{}

// WithProgress returns a context whose long work reports to f (the CLI draws
// a bar on a terminal, lines elsewhere). f is called from the working
// goroutine and must return quickly.
func WithProgress(ctx context.Context, f func(Progress)) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

// progressFrom returns ctx's progress reporter, or one that does nothing.
func progressFrom(ctx context.Context) func(Progress) {
	if f, ok := ctx.Value(progressKey{}).(func(Progress)); ok && f != nil {
		return f
	}
	return func(Progress) {}
}

// replayLogEvery spaces the INFO lines of a replay.
const replayLogEvery = 5 * time.Second

// replayReporter reports a replay to ctx's progress reporter and logs it at
// most every replayLogEvery (and at the end), not once per batch.
func replayReporter(ctx context.Context, log *slog.Logger) func(store.ReplayProgress) {
	rep := progressFrom(ctx)
	var last time.Time
	ended := false
	return func(p store.ReplayProgress) {
		done := p.Applied >= p.Total
		if ended {
			return
		}
		ended = done
		rep(Progress{Task: "replay", Done: p.Applied, Total: p.Total, Unit: "updates", Finished: done})
		if done || time.Since(last) >= replayLogEvery {
			last = time.Now()
			log.Info("replaying", "applied", p.Applied, "total", p.Total, "updates_per_s", int(p.UpdatesPerSec))
		}
	}
}
