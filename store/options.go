package store

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Option configures Open and OpenMemory.
type Option func(*options)

type options struct {
	syncWrites bool
	syncEvery  time.Duration
	gcEvery    time.Duration
	keepCkpts  int
	minFree    uint64
	memtable   int64
	log        *slog.Logger
	adopt      bool // take the stored manifest, whatever Open was given
}

// Defaults for a small node: one store per peer next to a model that needs
// the memory far more than Badger does.
const (
	defaultMemtable = 8 << 20
	defaultGCEvery  = 10 * time.Minute
	defaultKeep     = 2
)

func buildOptions(opts []Option) options {
	o := options{
		gcEvery:   defaultGCEvery,
		keepCkpts: defaultKeep,
		memtable:  defaultMemtable,
		log:       slog.Default().With("component", "store"),
	}
	for _, f := range opts {
		f(&o)
	}
	if o.minFree == 0 {
		// Badger's memtable and its WAL are an mmapped, sparse file: on a full
		// disk a write to it is a SIGBUS, not an error. Refusing to append
		// while less than room for two memtables (the live one and the one
		// being flushed) plus slack is free turns that into ErrDiskFull.
		o.minFree = uint64(2*o.memtable + 8<<20)
	}
	return o
}

// WithSyncWrites makes every Append fsync before it returns, so acknowledged
// updates survive power loss, at the cost of one fsync per call. Without it
// they survive any crash of the process (Badger's WAL is an mmapped file the
// kernel writes back) and power loss after the next Sync, checkpoint or Close.
func WithSyncWrites(on bool) Option { return func(o *options) { o.syncWrites = on } }

// WithSyncEvery fsyncs the log every d, bounding what power loss can take
// when WithSyncWrites is off. 0 (the default) disables it.
func WithSyncEvery(d time.Duration) Option { return func(o *options) { o.syncEvery = d } }

// WithGCEvery sets how often value-log garbage collection runs (default 10
// minutes); 0 disables it.
func WithGCEvery(d time.Duration) Option { return func(o *options) { o.gcEvery = d } }

// WithKeepCheckpoints sets how many checkpoints to keep (default 2, at least 1).
func WithKeepCheckpoints(n int) Option { return func(o *options) { o.keepCkpts = max(1, n) } }

// WithMinFree sets the free disk space below which Append and WriteCheckpoint
// fail with ErrDiskFull (default: two memtables plus 8 MiB).
func WithMinFree(bytes uint64) Option { return func(o *options) { o.minFree = bytes } }

// WithMemtableSize sets Badger's memtable size (default 8 MiB, at least 1 MiB).
func WithMemtableSize(bytes int64) Option {
	return func(o *options) { o.memtable = max(bytes, 1<<20) }
}

// txnUpdates is how many updates one Append transaction takes: each costs up
// to three entries (update, sequence, equivocation), and Badger refuses a
// transaction over 15% of a memtable, counting about 100 bytes per entry.
func (o options) txnUpdates() int {
	return int(min(1000, o.memtable*15/100/128/4))
}

// WithLogger sets the logger (default slog.Default with component=store).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// badgerOptions shrinks Badger's defaults (5×64 MiB memtables, 256 MiB block
// cache, 1 GiB value-log files) for a small node. Update values are at most
// 18 bytes, far below the value threshold, so they live in the LSM tree.
func badgerOptions(dir string, o options) badger.Options {
	return badger.DefaultOptions(dir).
		WithMemTableSize(o.memtable).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		// Badger needs the threshold below its batch limit (15% of a memtable).
		WithValueThreshold(min(1<<20, o.memtable/10)).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		// Append is serialised by the store, so there are no conflicts to detect.
		WithDetectConflicts(false).
		WithSyncWrites(o.syncWrites).
		WithLogger(badgerLogger{o.log})
}

// badgerLogger sends Badger's logs to slog; its chatty Info level goes to Debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...), "src", "badger") }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...), "src", "badger") }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(fmt.Sprintf(f, a...), "src", "badger") }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug(fmt.Sprintf(f, a...), "src", "badger") }

// WithStoredManifest makes Open of an existing store take the manifest the
// store holds instead of checking the one it is given (which is recorded
// only when the store is new). It is for tools that read a home whose
// settings they do not know, such as `zopeer export`; Manifest returns it.
func WithStoredManifest() Option { return func(o *options) { o.adopt = true } }
