package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/zopeer/zopeer/zo"
)

// ErrExcluded refuses an update of a machine excluded from the run.
var ErrExcluded = errors.New("store: machine is excluded from the run")

// Refusal is an offered update the log refused: of an excluded machine, or
// outside the run's rules (zo.Rules: bound, sample cap, admission).
type Refusal struct {
	Update zo.Update
	Err    error
}

// Exclusion is a machine excluded from the run and the evidence that
// convicts it (opaque to the store: the caller verifies it before Exclude).
type Exclusion struct {
	Machine  uint64
	Evidence []byte
}

func exclKey(machine uint64) []byte {
	k := make([]byte, 9)
	k[0] = pfxExcl
	binary.BigEndian.PutUint64(k[1:], machine)
	return k
}

// Exclude removes machine from the run: the evidence is recorded durably
// first, then the machine's logged updates and batches leave the log, the set
// digest trades their hashes for the machine's exclusion hash
// (docs/PROTOCOL.md §7), and its later updates are refused. It returns the
// updates that left the log (the caller subtracts those its weights include)
// and whether the machine was newly excluded; excluding it again does nothing.
// A crash after the evidence is recorded finishes the removal at the next Open.
func (s *Store) Exclude(ctx context.Context, machine uint64, evidence []byte) ([]zo.Update, bool, error) {
	return s.exclude(ctx, machine, evidence, false)
}

// Ban is Exclude for a machine convicted by an accusation (docs/PROTOCOL.md
// §11.4), except that the machine's signed batches stay in the log (Batches
// still returns them; its updates are gone from the set, the digest and
// replay, as with Exclude). A peer that holds the accusation but not yet the
// basis it names can then fetch the banned machine's own earlier batches
// from peers that banned it first, and re-compute the accusation itself.
func (s *Store) Ban(ctx context.Context, machine uint64, evidence []byte) ([]zo.Update, bool, error) {
	return s.exclude(ctx, machine, evidence, true)
}

func (s *Store) exclude(ctx context.Context, machine uint64, evidence []byte, keepBatches bool) ([]zo.Update, bool, error) {
	if !s.g.enter() {
		return nil, false, ErrClosed
	}
	defer s.g.exit()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.excl[machine] != nil {
		return nil, false, nil
	}
	ev := append([]byte(nil), evidence...)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(exclKey(machine), ev) }); err != nil {
		return nil, false, wrap("exclude", err)
	}
	removed, err := s.purge(ctx, machine, keepBatches)
	s.excl[machine] = ev
	for _, u := range removed {
		s.dig.Sub(u)
	}
	s.dig.AddHash(zo.ExclusionHash(machine))
	s.count -= uint64(len(removed))
	delete(s.sum, machine)
	delete(s.mdig, machine)
	if err != nil {
		// The exclusion stands (it is durable); Open finishes the removal.
		return removed, true, err
	}
	s.log.Warn("machine excluded", "machine", fmt.Sprintf("%016x", machine), "updates_removed", len(removed))
	return removed, true, nil
}

// purge deletes machine's updates and (unless keepBatches) batches,
// returning the updates.
func (s *Store) purge(ctx context.Context, machine uint64, keepBatches bool) ([]zo.Update, error) {
	var removed []zo.Update
	var keys [][]byte
	pfxs := []byte{pfxUpdate, pfxBatch}
	if keepBatches {
		pfxs = pfxs[:1]
	}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, pfx := range pfxs {
			p := make([]byte, 9)
			p[0] = pfx
			binary.BigEndian.PutUint64(p[1:], machine)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: pfx == pfxUpdate})
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().KeyCopy(nil)
				keys = append(keys, k)
				if pfx != pfxUpdate {
					continue
				}
				err := it.Item().Value(func(v []byte) error {
					if len(k) != 17 {
						return fmt.Errorf("%w: update key of %d bytes", ErrCorrupt, len(k))
					}
					u := zo.Update{Machine: machine, Sample: binary.BigEndian.Uint64(k[9:])}
					if err := s.readValue(&u, v); err != nil {
						return err
					}
					removed = append(removed, u)
					return nil
				})
				if err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, wrap("exclude", err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i, k := range keys {
		if i%4096 == 0 && ctx.Err() != nil {
			return removed, fmt.Errorf("store: exclude: %w", ctx.Err())
		}
		if err := wb.Delete(k); err != nil {
			return removed, wrap("exclude", err)
		}
	}
	return removed, wrap("exclude", wb.Flush())
}

// loadExclusions reads the excluded machines (at Open, before the log is scanned).
func (s *Store) loadExclusions(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxExcl}, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != 9 {
			return fmt.Errorf("%w: exclusion key of %d bytes", ErrCorrupt, len(k))
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		m := binary.BigEndian.Uint64(k[1:])
		s.excl[m] = v
		s.dig.AddHash(zo.ExclusionHash(m))
	}
	return nil
}

// Excluded reports whether machine is excluded from the run.
func (s *Store) Excluded(machine uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.excl[machine] != nil
}

// Evidence returns the evidence that excluded machine, if it is excluded.
func (s *Store) Evidence(machine uint64) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.excl[machine]
	return ev, ev != nil
}

// Exclusions returns every excluded machine with its evidence, by machine.
func (s *Store) Exclusions() []Exclusion {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Exclusion, 0, len(s.excl))
	for m, ev := range s.excl {
		out = append(out, Exclusion{Machine: m, Evidence: ev})
	}
	slices.SortFunc(out, func(a, b Exclusion) int { return cmp.Compare(a.Machine, b.Machine) })
	return out
}

// MachineDigest is the set digest of one machine's logged updates: peers
// compare it to find a machine whose updates they hold with different values.
func (s *Store) MachineDigest(machine uint64) zo.SetDigest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mdig[machine]
}

// KeepBannedBatch stores the signed batch raw, carrying us, of a banned
// machine (Ban) without logging its updates: a basis that an accusation
// names may include samples of a machine this peer banned before it held
// them, and those are fetched from peers that banned it later
// (docs/PROTOCOL.md §11.4). The caller checks that the machine's exclusion
// is a ban; a machine that is not excluded is refused.
func (s *Store) KeepBannedBatch(ctx context.Context, raw []byte, us []zo.Update) error {
	if len(us) == 0 || len(us) > MaxBatch || raw == nil {
		return fmt.Errorf("store: kept batch of %d updates", len(us))
	}
	for i, u := range us {
		if u.Machine != us[0].Machine || u.Sample != us[0].Sample+uint64(i) {
			return fmt.Errorf("store: kept batch updates are not one machine's consecutive samples")
		}
	}
	if !s.g.enter() {
		return ErrClosed
	}
	defer s.g.exit()
	if !s.Excluded(us[0].Machine) {
		return fmt.Errorf("store: machine %016x is not banned: its batches are logged, not kept", us[0].Machine)
	}
	return wrap("keep batch", s.db.Update(func(txn *badger.Txn) error {
		return putBatch(txn, us[0].Machine, us[0].Sample, len(us), raw)
	}))
}
