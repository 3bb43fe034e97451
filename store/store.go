// Package store is zopeer's durable update log: in zopeer the log is the
// model, so a peer rebuilds its exact weights from the base weights, the
// newest valid checkpoint and the logged updates that checkpoint lacks.
//
// The log is a Badger database behind a small API that exposes no Badger
// types. Updates are keyed by (machine, sample): appending is idempotent, an
// update that contradicts a logged one is an equivocation and is reported,
// never stored over the original. Every update also gets a per-store arrival
// sequence number, the cursor a node uses to ship "what arrived since".
// Checkpoints are files in the store directory with their metadata in Badger.
// See docs/STORE.md for the format and the durability argument.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	bopts "github.com/dgraph-io/badger/v4/options"

	"github.com/zopeer/zopeer/zo"
)

// Errors callers can test for with errors.Is. Every error of this package
// starts with "store: ".
var (
	ErrClosed       = errors.New("store: closed")
	ErrFormat       = errors.New("store: incompatible format version")
	ErrOtherRun     = errors.New("store: store belongs to another run")
	ErrManifest     = errors.New("store: manifest differs from the store's")
	ErrLocked       = errors.New("store: directory is in use by another process")
	ErrReadOnly     = errors.New("store: directory is not writable")
	ErrDiskFull     = errors.New("store: not enough free disk space")
	ErrCorrupt      = errors.New("store: corrupt data")
	ErrNotLogged    = errors.New("store: checkpoint includes updates that are not in the log")
	ErrNoManifest   = errors.New("store: store has no manifest")
	ErrBadWeights   = errors.New("store: weights do not match the checkpoint layout")
	ErrNoCheckpoint = errors.New("store: no such checkpoint")
)

// Key layout. Big-endian integers make Badger's byte order the numeric order.
const (
	keyVersion  = 'v' // "v" -> u32 format version, written before anything else
	keyManifest = 'm' // "m" -> JSON manifest
	pfxUpdate   = 'u' // u machine sample -> exp code
	pfxSeq      = 's' // s seq -> machine sample exp code
	pfxEquiv    = 'e' // e machine sample exp code -> (empty): an offered value that contradicts the log
	pfxCkpt     = 'c' // c id -> JSON CheckpointInfo
	pfxBatch    = 'b' // b machine first -> u32be(count) raw: a signed batch as received
	pfxExcl     = 'x' // x machine -> evidence: the machine is excluded from the run
)

// Cursor is a position in a store's arrival order: the sequence number of the
// last update a reader has seen. Sequence numbers start at 1, so the zero
// Cursor means "from the beginning". Cursors are per store: they mean nothing
// to another peer's store.
type Cursor uint64

// Entry is a logged update with its arrival sequence number.
type Entry struct {
	Seq    Cursor
	Update zo.Update
}

// Key is a position in the canonical (machine, sample) order.
type Key struct {
	Machine, Sample uint64
}

// Equivocation is an offered update that contradicts the logged one with the
// same (machine, sample).
type Equivocation struct {
	Stored, Offered zo.Update
}

// AppendResult says what Append did with each update it was given.
type AppendResult struct {
	Added         int            // newly logged
	Duplicates    int            // already logged with the same value
	Equivocations []Equivocation // contradicting the log; not stored
	Refused       []Refusal      // of excluded machines or outside the run's rules; not stored
	Last          Cursor         // sequence number of the last update added, or 0
}

// Store is an open update log. Its methods are safe for concurrent use.
type Store struct {
	dir  string // "" in memory
	opts options
	log  *slog.Logger
	db   *badger.DB
	cks  blobStore
	lock *os.File
	man  Manifest
	g    gate

	stop    chan struct{} // closed by Close: the maintenance goroutine exits
	bgDone  chan struct{} // closed by the maintenance goroutine as it exits
	closeMu sync.Once
	closeEr error

	mu     sync.Mutex // serialises Append and checkpoint numbering; guards the fields below
	seq    Cursor
	sum    Summary
	dig    zo.SetDigest // of the included updates and the exclusions (docs/PROTOCOL.md §7)
	mdig   map[uint64]zo.SetDigest
	excl   map[uint64][]byte // excluded machine -> evidence
	rules  zo.Rules
	count  uint64
	nextCk uint64

	// pinMu serialises pruning with Pin; pinned is the checkpoint pruning
	// keeps whatever its age (the snapshot a donor serves), 0 for none
	// (checkpoint ids start at 1).
	pinMu  sync.Mutex
	pinned uint64

	created bool // Open found no format version: the store is new
}

// Open opens the store in dir, creating it if needed. A new store records m
// as its manifest; an existing one must hold an equal manifest of the same
// format version, or Open fails with ErrFormat, ErrOtherRun or ErrManifest.
func Open(ctx context.Context, dir string, m Manifest, opts ...Option) (*Store, error) {
	o := buildOptions(opts)
	if err := os.MkdirAll(filepath.Join(dir, ckptDir), 0o755); err != nil {
		return nil, dirError(dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	if err := checkFree(dir, o.minFree); err != nil {
		unlockDir(lock)
		return nil, err
	}
	if err := removeEmptyLogs(filepath.Join(dir, "db")); err != nil {
		unlockDir(lock)
		return nil, err
	}
	// Every table's checksums are verified as Badger opens it, so a damaged
	// table is an error at start, not a wrong read later.
	bo := badgerOptions(filepath.Join(dir, "db"), o).WithChecksumVerificationMode(bopts.OnTableRead)
	files, err := checkDB(dir, bo, o.log)
	if err != nil {
		unlockDir(lock)
		return nil, err
	}
	s, err := open(ctx, bo, m, o)
	if err != nil {
		unlockDir(lock)
		return nil, err
	}
	if s.created && files.holdsData() {
		// Whatever the cause, an empty log next to data is never a store to
		// train on: the checkpoints would be deleted as orphans and the
		// machine would re-use its sample indices.
		s.Close()
		unlockDir(lock)
		return nil, fmt.Errorf("%w: %s opened as an empty log next to %s; restore the store from a backup, "+
			"or move it aside and restart to fetch the run's updates from peers again", ErrCorrupt, dir, files.describe())
	}
	s.dir, s.lock = dir, lock
	s.cks = dirBlobs{dir: filepath.Join(dir, ckptDir)}
	s.start()
	if err := s.removeOrphans(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// removeEmptyLogs deletes zero-length WAL (.mem) and value-log (.vlog) files.
// A kill between Badger creating such a file and sizing it leaves one behind;
// it holds no data, yet Badger refuses to open the database while it exists
// (dgraph-io/badger#2207; TestCrashKill hit it about once in 20 runs).
func removeEmptyLogs(dbDir string) error {
	es, err := os.ReadDir(dbDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range es {
		ext := filepath.Ext(e.Name())
		if ext != ".mem" && ext != ".vlog" || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if fi.Size() == 0 {
			if err := os.Remove(filepath.Join(dbDir, e.Name())); err != nil {
				return dirError(dbDir, err)
			}
		}
	}
	return nil
}

// OpenMemory returns a store that lives in memory only, for tests. It behaves
// like a disk store except that nothing survives Close.
func OpenMemory(m Manifest, opts ...Option) (*Store, error) {
	o := buildOptions(opts)
	s, err := open(context.Background(), badgerOptions("", o).WithInMemory(true), m, o)
	if err != nil {
		return nil, err
	}
	s.cks = newMemBlobs()
	s.start()
	return s, nil
}

func open(ctx context.Context, bo badger.Options, m Manifest, o options) (_ *Store, err error) {
	var db *badger.DB
	// Badger panics on some damaged files instead of returning an error:
	// those in this goroutine end here (checkDB catches the known ones first).
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				func() {
					defer func() { recover() }()
					db.Close()
				}()
			}
			err = fmt.Errorf("%w: Badger failed on the files in %s: %v", ErrCorrupt, bo.Dir, r)
		}
	}()
	db, err = badger.Open(bo)
	if err != nil {
		if isCorruption(err) {
			return nil, fmt.Errorf("%w: open %s: %w", ErrCorrupt, bo.Dir, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", bo.Dir, err)
	}
	s := &Store{opts: o, log: o.log, db: db, sum: Summary{}, mdig: map[uint64]zo.SetDigest{}, excl: map[uint64][]byte{}, nextCk: 1}
	if err := s.load(ctx, m); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// load checks or records the manifest and rebuilds the in-memory state.
func (s *Store) load(ctx context.Context, m Manifest) error {
	m.FormatVersion = FormatVersion
	err := s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte{keyVersion})
		if errors.Is(err, badger.ErrKeyNotFound) {
			s.created = true
			enc, err := encodeManifest(m)
			if err != nil {
				return err
			}
			if err := txn.Set([]byte{keyVersion}, binary.BigEndian.AppendUint32(nil, FormatVersion)); err != nil {
				return err
			}
			return txn.Set([]byte{keyManifest}, enc)
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(v) != 4 {
			return fmt.Errorf("%w: format version key holds %d bytes", ErrCorrupt, len(v))
		}
		if got := binary.BigEndian.Uint32(v); got != FormatVersion {
			return fmt.Errorf("%w: store has format %d, this build reads %d", ErrFormat, got, FormatVersion)
		}
		item, err = txn.Get([]byte{keyManifest})
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNoManifest
		}
		if err != nil {
			return err
		}
		b, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		stored, err := decodeManifest(b)
		if err != nil {
			return err
		}
		switch f := stored.diff(m); {
		case s.opts.adopt, f == "":
		case f == "run":
			return fmt.Errorf("%w: store is of run %q, node is of run %q", ErrOtherRun, stored.Run, m.Run)
		default:
			return fmt.Errorf("%w: field %s", ErrManifest, f)
		}
		m = stored
		return nil
	})
	if err != nil {
		return wrap("open", err)
	}
	s.man = m
	if s.rules, err = m.Rules(); err != nil {
		return err
	}
	// The summary and the set digest are rebuilt from one scan of the log
	// (update values sit next to their keys in the LSM tree), the newest
	// sequence number and checkpoint id from one reverse seek each.
	leftover := map[uint64]bool{} // excluded machines a crash left updates of
	err = wrap("open", s.db.View(func(txn *badger.Txn) error {
		if err := s.loadExclusions(txn); err != nil {
			return err
		}
		var scanErr error
		s.scanUpdates(ctx, txn, Key{}, func(u zo.Update, err error) bool {
			if err != nil {
				scanErr = err
				return false
			}
			if s.excl[u.Machine] != nil {
				leftover[u.Machine] = true
				return true
			}
			s.sum.Add(u.Machine, u.Sample)
			s.dig.Add(u)
			d := s.mdig[u.Machine]
			d.Add(u)
			s.mdig[u.Machine] = d
			s.count++
			return true
		})
		if scanErr != nil {
			return scanErr
		}
		if k := lastKey(txn, pfxSeq); k != nil {
			s.seq = Cursor(binary.BigEndian.Uint64(k[1:]))
		}
		if k := lastKey(txn, pfxCkpt); k != nil {
			s.nextCk = binary.BigEndian.Uint64(k[1:]) + 1
		}
		return nil
	}))
	if err != nil {
		return err
	}
	for m := range leftover {
		// Finishing a ban interrupted by a crash also drops the banned
		// machine's batches: they only help peers that lag behind.
		if _, err := s.purge(ctx, m, false); err != nil {
			return err
		}
		s.log.Warn("finished removing an excluded machine's updates", "machine", fmt.Sprintf("%016x", m))
	}
	return nil
}

// lastKey returns a copy of the greatest 9-byte key with the given prefix.
func lastKey(txn *badger.Txn, pfx byte) []byte {
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte{pfx}})
	defer it.Close()
	it.Seek([]byte{pfx, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if !it.Valid() || len(it.Item().Key()) != 9 {
		return nil
	}
	return it.Item().KeyCopy(nil)
}

// wrap names the operation unless err already carries this package's prefix.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, e := range []error{ErrClosed, ErrFormat, ErrOtherRun, ErrManifest, ErrCorrupt, ErrNoManifest, ErrDiskFull, ErrNotLogged, ErrBadWeights, ErrReadOnly, ErrLocked} {
		if errors.Is(err, e) {
			return err
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// start launches the maintenance goroutine. It exits when Close closes stop.
func (s *Store) start() {
	s.stop, s.bgDone = make(chan struct{}), make(chan struct{})
	go s.maintain()
}

// maintain runs value-log GC and, if configured, periodic syncs.
func (s *Store) maintain() {
	defer close(s.bgDone)
	var gcC, syncC <-chan time.Time
	if s.dir != "" && s.opts.gcEvery > 0 {
		t := time.NewTicker(s.opts.gcEvery)
		defer t.Stop()
		gcC = t.C
	}
	if s.dir != "" && s.opts.syncEvery > 0 {
		t := time.NewTicker(s.opts.syncEvery)
		defer t.Stop()
		syncC = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-gcC:
			s.runGC()
		case <-syncC:
			if err := s.db.Sync(); err != nil {
				s.log.Error("periodic sync failed", "err", err)
			}
		}
	}
}

// runGC rewrites value-log files until Badger finds nothing worth rewriting.
func (s *Store) runGC() {
	for n := 0; ; n++ {
		select {
		case <-s.stop:
			return
		default:
		}
		err := s.db.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			s.log.Warn("value-log GC failed", "err", err)
		}
		if n > 0 {
			s.log.Debug("value-log GC", "files", n)
		}
		return
	}
}

// Close stops the maintenance goroutine, waits for calls in progress, and
// closes the database (which flushes it). Calling it again returns the first
// call's result. Close must not be called from inside an iteration over the
// store: it would wait for that iteration forever.
func (s *Store) Close() error {
	s.closeMu.Do(func() {
		s.g.close()
		close(s.stop)
		<-s.bgDone
		if err := s.db.Close(); err != nil {
			s.closeEr = fmt.Errorf("store: close: %w", err)
		}
		if s.lock != nil {
			unlockDir(s.lock)
		}
	})
	return s.closeEr
}

// Manifest returns the store's manifest.
func (s *Store) Manifest() Manifest { return s.man }

// Sync makes every logged update durable against power loss, not only
// against a crash of the process (which Append already guarantees).
func (s *Store) Sync() error {
	if !s.g.enter() {
		return ErrClosed
	}
	defer s.g.exit()
	if s.dir == "" {
		return nil
	}
	return wrap("sync", s.db.Sync())
}

func updateKey(machine, sample uint64) []byte {
	k := make([]byte, 17)
	k[0] = pfxUpdate
	binary.BigEndian.PutUint64(k[1:], machine)
	binary.BigEndian.PutUint64(k[9:], sample)
	return k
}

// A sequence entry's value is the update in full (machine, sample, exp,
// code), so a cursor scan needs no second lookup.
func seqKey(seq Cursor) []byte {
	k := make([]byte, 9)
	k[0] = pfxSeq
	binary.BigEndian.PutUint64(k[1:], uint64(seq))
	return k
}

func equivKey(u zo.Update) []byte {
	k := updateKey(u.Machine, u.Sample)
	k[0] = pfxEquiv
	return appendValue(k, u)
}

// storedValue returns the update logged under update key k of (machine, sample).
func (s *Store) storedValue(txn *badger.Txn, k []byte, machine, sample uint64) (zo.Update, error) {
	u := zo.Update{Machine: machine, Sample: sample}
	item, err := txn.Get(k)
	if err != nil {
		return u, err
	}
	err = item.Value(func(b []byte) error { return s.readValue(&u, b) })
	return u, err
}

// decodeSeqValue reads a sequence entry (also the tail of an equivocation
// key): u64be machine, u64be sample, the logged value.
func (s *Store) decodeSeqValue(v []byte) (zo.Update, error) {
	if len(v) != 16+s.valueLen() {
		return zo.Update{}, fmt.Errorf("%w: sequence entry of %d bytes", ErrCorrupt, len(v))
	}
	u := zo.Update{Machine: binary.BigEndian.Uint64(v), Sample: binary.BigEndian.Uint64(v[8:])}
	return u, s.readValue(&u, v[16:])
}

// Append logs us. Every update it reports added is durable when Append
// returns: it survives a crash of the process at any later moment, and power
// loss too with WithSyncWrites (or after Sync). Updates already logged with
// the same value count as duplicates; ones that contradict the log are
// returned as equivocations, recorded as evidence, and not stored as updates.
// On error, updates of earlier transactions (res.Added of them) may have been
// logged; appending the same updates again is safe.
func (s *Store) Append(ctx context.Context, us ...zo.Update) (AppendResult, error) {
	return s.AppendBatch(ctx, nil, us...)
}

// AppendBatch is Append for the updates of one signed batch, whose wire form
// raw (opaque to the store) is kept so the node can serve it to peers that
// need to verify the original signature. us must be one machine's
// consecutive samples, us[0] first. raw is written with the first
// transaction, so it is durable whenever any of its updates is; a batch
// already held under the same (machine, first sample) is kept as it was.
// A nil raw stores no batch.
func (s *Store) AppendBatch(ctx context.Context, raw []byte, us ...zo.Update) (AppendResult, error) {
	var res AppendResult
	var bm, bfirst uint64
	bn := len(us)
	if raw != nil {
		if len(us) == 0 || len(us) > MaxBatch {
			return res, fmt.Errorf("store: batch of %d updates (want 1..%d)", len(us), MaxBatch)
		}
		for i, u := range us {
			if u.Machine != us[0].Machine || u.Sample != us[0].Sample+uint64(i) {
				return res, fmt.Errorf("store: batch updates are not one machine's consecutive samples")
			}
		}
		bm, bfirst = us[0].Machine, us[0].Sample
	}
	if !s.g.enter() {
		return res, ErrClosed
	}
	defer s.g.exit()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != "" {
		if err := checkFree(s.dir, s.opts.minFree); err != nil {
			return res, err
		}
	}
	us, res.Refused = s.admit(us, raw != nil)
	if len(us) == 0 {
		return res, nil
	}
	for len(us) > 0 {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("store: append: %w", err)
		}
		chunk := us[:min(len(us), s.opts.txnUpdates())]
		us = us[len(chunk):]
		seq := s.seq
		var added []zo.Update
		var dups int
		var eqs []Equivocation
		// Keys and values of the whole chunk are carved from one buffer, which
		// never grows, so Badger may keep the slices until commit.
		buf := make([]byte, 0, len(chunk)*(17+3+9+19))
		carve := func(n int) []byte {
			buf = buf[:len(buf)+n]
			return buf[len(buf)-n:]
		}
		inChunk := Summary{}
		err := s.db.Update(func(txn *badger.Txn) error {
			if raw != nil {
				if err := putBatch(txn, bm, bfirst, bn, raw); err != nil {
					return err
				}
				raw = nil
			}
			for _, u := range chunk {
				k := carve(17)
				k[0] = pfxUpdate
				binary.BigEndian.PutUint64(k[1:], u.Machine)
				binary.BigEndian.PutUint64(k[9:], u.Sample)
				// The summary is exact, so a key in neither it nor this chunk
				// is new without a lookup in the LSM tree; otherwise the
				// transaction, which reads its own pending writes, has it.
				if s.sum.Contains(u.Machine, u.Sample) || !inChunk.Add(u.Machine, u.Sample) {
					stored, err := s.storedValue(txn, k, u.Machine, u.Sample)
					if err != nil {
						return err
					}
					if stored.SameValue(u) {
						dups++
						continue
					}
					eqs = append(eqs, Equivocation{Stored: stored, Offered: u})
					if err := txn.Set(equivKey(u), nil); err != nil {
						return err
					}
					continue
				}
				seq++
				v := appendValue(carve(0), u)
				carve(len(v))
				sk := carve(9)
				sk[0] = pfxSeq
				binary.BigEndian.PutUint64(sk[1:], uint64(seq))
				sv := carve(16 + len(v))
				copy(sv, k[1:])
				copy(sv[16:], v)
				if err := txn.Set(k, v); err != nil {
					return err
				}
				if err := txn.Set(sk, sv); err != nil {
					return err
				}
				added = append(added, u)
			}
			return nil
		})
		if err != nil {
			return res, wrap("append", err)
		}
		s.seq = seq
		for _, u := range added {
			s.sum.Add(u.Machine, u.Sample)
			s.dig.Add(u)
			d := s.mdig[u.Machine]
			d.Add(u)
			s.mdig[u.Machine] = d
		}
		s.count += uint64(len(added))
		res.Added += len(added)
		res.Duplicates += dups
		res.Equivocations = append(res.Equivocations, eqs...)
		if len(added) > 0 {
			res.Last = seq
		}
	}
	for _, e := range res.Equivocations {
		s.log.Warn("equivocation", "machine", e.Stored.Machine, "sample", e.Stored.Sample,
			"stored_exp", e.Stored.Exp, "stored_code", e.Stored.Code,
			"offered_exp", e.Offered.Exp, "offered_code", e.Offered.Code)
	}
	return res, nil
}

// admit splits us into the updates the run admits and the refused ones. The
// updates of one signed batch stand or fall together. Called with s.mu held.
func (s *Store) admit(us []zo.Update, batch bool) ([]zo.Update, []Refusal) {
	var refused []Refusal
	ok := us[:0:0]
	for _, u := range us {
		err := s.rules.Check(u)
		if err == nil && s.excl[u.Machine] != nil {
			err = fmt.Errorf("%w: machine %016x", ErrExcluded, u.Machine)
		}
		if err != nil {
			refused = append(refused, Refusal{Update: u, Err: err})
			continue
		}
		ok = append(ok, u)
	}
	if batch && len(refused) > 0 && len(ok) > 0 {
		for _, u := range ok {
			refused = append(refused, Refusal{Update: u, Err: refused[0].Err})
		}
		ok = nil
	}
	return ok, refused
}

// Get returns the logged update (machine, sample), if any.
func (s *Store) Get(machine, sample uint64) (zo.Update, bool, error) {
	if !s.g.enter() {
		return zo.Update{}, false, ErrClosed
	}
	defer s.g.exit()
	u := zo.Update{Machine: machine, Sample: sample}
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(updateKey(machine, sample))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error { return s.readValue(&u, v) })
	})
	if err != nil {
		return zo.Update{}, false, wrap("get", err)
	}
	return u, found, nil
}

// Updates iterates the log in canonical order, (machine, sample) ascending,
// from the first update at or after from, over a consistent snapshot. The
// loop body may call other methods of the store, except Close.
func (s *Store) Updates(ctx context.Context, from Key) iter.Seq2[zo.Update, error] {
	return func(yield func(zo.Update, error) bool) {
		if !s.g.enter() {
			yield(zo.Update{}, ErrClosed)
			return
		}
		defer s.g.exit()
		txn := s.db.NewTransaction(false)
		defer txn.Discard()
		s.scanUpdates(ctx, txn, from, yield)
	}
}

// scanUpdates yields updates of txn's snapshot from the given key on.
func (s *Store) scanUpdates(ctx context.Context, txn *badger.Txn, from Key, yield func(zo.Update, error) bool) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxUpdate}, PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	n := 0
	for it.Seek(updateKey(from.Machine, from.Sample)); it.Valid(); it.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			yield(zo.Update{}, fmt.Errorf("store: scan: %w", ctx.Err()))
			return
		}
		item := it.Item()
		k := item.Key()
		var u zo.Update
		err := item.Value(func(v []byte) error {
			if len(k) != 17 {
				return fmt.Errorf("%w: update key of %d bytes", ErrCorrupt, len(k))
			}
			u = zo.Update{Machine: binary.BigEndian.Uint64(k[1:]), Sample: binary.BigEndian.Uint64(k[9:])}
			return s.readValue(&u, v)
		})
		if err != nil {
			yield(zo.Update{}, wrap("scan", err))
			return
		}
		if !yield(u, nil) {
			return
		}
	}
}

// Since iterates the updates that arrived after cursor c, in arrival order,
// over a consistent snapshot. Appends commit in sequence order, so a snapshot
// never holds an entry without every earlier one: resuming from the last
// Entry.Seq seen skips nothing.
func (s *Store) Since(ctx context.Context, c Cursor) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if !s.g.enter() {
			yield(Entry{}, ErrClosed)
			return
		}
		defer s.g.exit()
		if c == math.MaxUint64 {
			return // nothing can follow; c+1 would wrap to the beginning
		}
		txn := s.db.NewTransaction(false)
		defer txn.Discard()
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxSeq}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		n := 0
		for it.Seek(seqKey(c + 1)); it.Valid(); it.Next() {
			if n++; n%1024 == 0 && ctx.Err() != nil {
				yield(Entry{}, fmt.Errorf("store: since: %w", ctx.Err()))
				return
			}
			item := it.Item()
			var e Entry
			err := item.Value(func(v []byte) error {
				u, err := s.decodeSeqValue(v)
				e = Entry{Seq: Cursor(binary.BigEndian.Uint64(item.Key()[1:])), Update: u}
				return err
			})
			if err != nil {
				yield(Entry{}, wrap("since", err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// Equivocations iterates the recorded equivocating offers, in canonical order
// of their (machine, sample). Each value yielded is what was offered; the
// logged update holds the value that came first.
func (s *Store) Equivocations(ctx context.Context) iter.Seq2[zo.Update, error] {
	return func(yield func(zo.Update, error) bool) {
		if !s.g.enter() {
			yield(zo.Update{}, ErrClosed)
			return
		}
		defer s.g.exit()
		txn := s.db.NewTransaction(false)
		defer txn.Discard()
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxEquiv}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				yield(zo.Update{}, fmt.Errorf("store: equivocations: %w", err))
				return
			}
			k := it.Item().Key()
			u, err := s.decodeSeqValue(k[1:])
			if err != nil {
				yield(zo.Update{}, fmt.Errorf("%w: equivocation key of %d bytes", ErrCorrupt, len(k)))
				return
			}
			if !yield(u, nil) {
				return
			}
		}
	}
}

// Summary returns which samples of which machines the log holds.
func (s *Store) Summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum.Clone()
}

// Digest returns the set digest of the log: peers holding the same updates
// have equal digests, and equal weights after Replay.
func (s *Store) Digest() zo.SetDigest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dig
}

// Held returns the samples of one machine the log holds.
func (s *Store) Held(machine uint64) RangeSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(RangeSet(nil), s.sum[machine]...)
}

// Stats is a point-in-time view of the log's size.
type Stats struct {
	Updates uint64 // distinct updates logged
	Last    Cursor // sequence number of the newest update
}

// Stats returns the log's size.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Updates: s.count, Last: s.seq}
}

// gate lets Close wait for the calls in progress and refuse new ones, without
// the reentrancy deadlock of an RWMutex held across an iteration's loop body.
type gate struct {
	mu     sync.Mutex
	cond   *sync.Cond
	n      int
	closed bool
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) exit() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.cond != nil {
		g.cond.Broadcast()
	}
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.cond = sync.NewCond(&g.mu)
	for g.n > 0 {
		g.cond.Wait()
	}
}
