package dataset

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Split divides d into training and held-out records: a record is held out
// when the first 8 bytes of its content hash, read as a big-endian uint64,
// are below fraction·2^64. The split depends only on each record's content,
// so it does not change when records are added, removed or reordered, and
// duplicates land on the same side. fraction must be in [0, 1); an empty
// training set is an error, an empty held-out set is not.
func (d *Dataset) Split(fraction float64) (train, heldOut *Dataset, err error) {
	if !(fraction >= 0 && fraction < 1) {
		return nil, nil, fmt.Errorf("dataset: held-out fraction %v is not in [0, 1)", fraction)
	}
	threshold := uint64(math.Ldexp(fraction, 64))
	train, heldOut = &Dataset{}, &Dataset{}
	for _, r := range d.records {
		if binary.BigEndian.Uint64(r.key[:8]) < threshold {
			heldOut.records = append(heldOut.records, r)
		} else {
			train.records = append(train.records, r)
		}
	}
	if train.Len() == 0 {
		return nil, nil, fmt.Errorf("dataset: all %d records are held out at fraction %v", d.Len(), fraction)
	}
	return train, heldOut, nil
}

// Shard returns shard i of n: the records whose position in d is i modulo
// n. Shards are disjoint, cover d, and differ in size by at most one; an
// empty shard is an error.
func (d *Dataset) Shard(i, n int) (*Dataset, error) {
	if n < 1 || i < 0 || i >= n {
		return nil, fmt.Errorf("dataset: shard %d of %d does not exist", i, n)
	}
	if i >= d.Len() {
		return nil, fmt.Errorf("dataset: shard %d of %d is empty (%d records)", i, n, d.Len())
	}
	s := &Dataset{}
	for j := i; j < d.Len(); j += n {
		s.records = append(s.records, d.records[j])
	}
	return s, nil
}

// Sample returns the index of the record that machine trains on at its k-th
// step of run: Sample(run, machine, k, d.Len()).
func (d *Dataset) Sample(run string, machine, k uint64) int {
	return Sample(run, machine, k, d.Len())
}

// Sample maps step k of a machine in a run to a record index in [0, n). It
// is a pure function. Steps are grouped into epochs of n; within epoch
// e = k / n, step k gets π(k mod n) for a pseudorandom permutation π of
// [0, n) keyed by (run, machine, e), so every record comes once per epoch
// and each machine and epoch has its own order.
//
// π is a balanced Feistel network of six rounds on 2h-bit integers, with
// 4^h the smallest power of four ≥ n, cycle-walking until the value falls
// below n (docs/DATA.md). n must be positive.
func Sample(run string, machine, k uint64, n int) int {
	if n <= 0 {
		panic("dataset: Sample over an empty dataset")
	}
	N := uint64(n)
	epoch, pos := k/N, k%N
	key := sampleKey(run, machine, epoch)
	h := (bits.Len64(N-1) + 1) / 2 // half width: 4^h >= n
	x := pos
	for {
		x = feistel(key, h, x)
		if x < N {
			return int(x)
		}
	}
}

func sampleKey(run string, machine, epoch uint64) [sha256.Size]byte {
	buf := make([]byte, 0, 64+len(run))
	buf = append(buf, "zopeer/dataset/sample/v1\x00"...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(run)))
	buf = append(buf, run...)
	buf = binary.BigEndian.AppendUint64(buf, machine)
	buf = binary.BigEndian.AppendUint64(buf, epoch)
	return sha256.Sum256(buf)
}

const feistelRounds = 6

// feistel permutes [0, 4^h): x = L·2^h + R; each round (L, R) ← (R, L ⊕ F(R))
// with F the first 8 bytes of SHA-256(key ‖ round ‖ R) masked to h bits.
func feistel(key [sha256.Size]byte, h int, x uint64) uint64 {
	if h == 0 {
		return 0
	}
	mask := uint64(1)<<h - 1
	l, r := x>>h, x&mask
	var buf [sha256.Size + 1 + 8]byte
	copy(buf[:], key[:])
	for round := byte(0); round < feistelRounds; round++ {
		buf[sha256.Size] = round
		binary.BigEndian.PutUint64(buf[sha256.Size+1:], r)
		sum := sha256.Sum256(buf[:])
		l, r = r, l^(binary.BigEndian.Uint64(sum[:8])&mask)
	}
	return l<<h | r
}
