package p2p

import (
	"encoding/binary"
	"sort"
	"sync"

	"github.com/zopeer/zopeer/zo"
)

// MemLog is a Log in memory, with what a node's store must do (all-or-nothing
// batches, conflicts refused, exclusions by evidence), for peers without a
// store: this package's tests and the network test tool (testnet/cmd/p2pnode).
// It keeps every batch; nothing bounds it.
type MemLog struct {
	mu      sync.Mutex
	ups     map[[2]uint64]zo.Update
	holds   map[uint64]Ranges
	batches map[uint64][]*Batch // per machine, by First
	digest  zo.SetDigest
	mdig    map[uint64]zo.SetDigest
	excl    map[uint64][]byte // machine -> evidence
}

// NewMemLog returns an empty MemLog.
func NewMemLog() *MemLog {
	return &MemLog{ups: map[[2]uint64]zo.Update{}, holds: map[uint64]Ranges{}, batches: map[uint64][]*Batch{},
		mdig: map[uint64]zo.SetDigest{}, excl: map[uint64][]byte{}}
}

func (l *MemLog) Excluded(m uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.excl[m] != nil
}

func (l *MemLog) Exclusions() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]uint64, 0, len(l.excl))
	for m := range l.excl {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (l *MemLog) Evidence(m uint64) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev, ok := l.excl[m]
	return ev, ok
}

// Exclude drops machine ev.Machine as a node's store does; it reports
// whether the machine was not excluded before.
func (l *MemLog) Exclude(ev *Evidence) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.excl[ev.Machine] != nil {
		return false
	}
	l.excl[ev.Machine] = ev.Raw
	for k, u := range l.ups {
		if k[0] == ev.Machine {
			l.digest.Sub(u)
			delete(l.ups, k)
		}
	}
	l.digest.AddHash(zo.ExclusionHash(ev.Machine))
	delete(l.holds, ev.Machine)
	delete(l.batches, ev.Machine)
	delete(l.mdig, ev.Machine)
	return true
}

func (l *MemLog) Get(m, s uint64) (zo.Update, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.ups[[2]uint64{m, s}]
	return u, ok, nil
}

func (l *MemLog) Holdings() ([]Holding, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := make([]Holding, 0, len(l.holds))
	for m, rs := range l.holds {
		d := l.mdig[m]
		hs = append(hs, Holding{Machine: m, Samples: append(Ranges(nil), rs...), Digest: binary.BigEndian.Uint64(d[:8])})
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].Machine < hs[j].Machine })
	return hs, nil
}

func (l *MemLog) Batches(m, lo, hi uint64, max int) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	n := 0
	for _, b := range l.batches[m] {
		if b.Last() < lo || b.First > hi {
			continue
		}
		out = append(out, b.Raw)
		if n += len(b.Codes); max > 0 && n >= max {
			break
		}
	}
	return out, nil
}

// Store adds b's new updates, all or nothing: it refuses a batch that
// conflicts with the log, as a node's store must.
func (l *MemLog) Store(b *Batch) (added int, conflict bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.excl[b.Machine] != nil {
		return 0, false
	}
	for _, u := range b.Updates() {
		if h, ok := l.ups[[2]uint64{u.Machine, u.Sample}]; ok && h != u {
			return 0, true
		}
	}
	for _, u := range b.Updates() {
		k := [2]uint64{u.Machine, u.Sample}
		if _, ok := l.ups[k]; ok {
			continue
		}
		l.ups[k] = u
		l.digest.Add(u)
		d := l.mdig[u.Machine]
		d.Add(u)
		l.mdig[u.Machine] = d
		l.holds[u.Machine] = l.holds[u.Machine].Add(u.Sample, u.Sample)
		added++
	}
	if added > 0 {
		bs := append(l.batches[b.Machine], b)
		sort.Slice(bs, func(i, j int) bool { return bs[i].First < bs[j].First })
		l.batches[b.Machine] = bs
	}
	return added, false
}

// Count is the number of updates held.
func (l *MemLog) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ups)
}

// Digest is the set digest of the updates held and the exclusions.
func (l *MemLog) Digest() zo.SetDigest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.digest
}
