package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// MaxBatch is the most updates one stored batch may carry (the wire format's bound).
const MaxBatch = 4096

func batchKey(machine, first uint64) []byte {
	k := updateKey(machine, first)
	k[0] = pfxBatch
	return k
}

func putBatch(txn *badger.Txn, machine, first uint64, n int, raw []byte) error {
	k := batchKey(machine, first)
	if _, err := txn.Get(k); err == nil {
		return nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	v := make([]byte, 4+len(raw))
	binary.BigEndian.PutUint32(v, uint32(n))
	copy(v[4:], raw)
	return txn.Set(k, v)
}

// Batches returns, in increasing order of first sample, the stored signed
// batches of machine that carry any sample in [lo, hi], stopping once they
// total max updates or more (max ≤ 0: no limit).
func (s *Store) Batches(machine, lo, hi uint64, max int) ([][]byte, error) {
	if !s.g.enter() {
		return nil, ErrClosed
	}
	defer s.g.exit()
	var out [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		pfx := batchKey(machine, 0)[:9]
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		// A batch holds at most MaxBatch samples, so one that covers lo starts
		// at most MaxBatch−1 before it.
		from := lo - min(lo, MaxBatch-1)
		total := 0
		for it.Seek(batchKey(machine, from)); it.Valid(); it.Next() {
			first := binary.BigEndian.Uint64(it.Item().Key()[9:])
			if first > hi || max > 0 && total >= max {
				return nil
			}
			err := it.Item().Value(func(v []byte) error {
				if len(v) < 4 {
					return fmt.Errorf("%w: batch entry of %d bytes", ErrCorrupt, len(v))
				}
				n := uint64(binary.BigEndian.Uint32(v))
				if first+n-1 < lo {
					return nil
				}
				out = append(out, append([]byte(nil), v[4:]...))
				total += int(n)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, wrap("batches", err)
}
