package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zopeer/zopeer/p2p"
)

// fakeDonors serves a snapshot's chunks: each donor its own bytes (an honest
// one the snapshot, a corrupt one others); the parallel fetch deals the
// missing chunks round-robin over the donors it is given, so a corrupt
// donor's chunks end up mixed with honest ones. Donors in down send nothing,
// and their chunks go to the next donor, as p2p's fetch does.
type fakeDonors struct {
	data  map[peer.ID][]byte
	down  map[peer.ID]bool
	calls int
}

// partial ends the next fetch after n chunks (a donor that went away).
type partial struct {
	*fakeDonors
	n int
}

func (p partial) FetchSnapshot(ctx context.Context, from []peer.ID, h [32]byte, dst []byte, by []peer.ID) error {
	held := slices.Clone(by)
	p.fakeDonors.FetchSnapshot(ctx, from, h, dst, by)
	for i := range by {
		if held[i] == "" && by[i] != "" {
			if p.n == 0 {
				by[i] = ""
			} else {
				p.n--
			}
		}
	}
	if slices.Contains(by, "") {
		return p2p.ErrSnapshotIncomplete
	}
	return nil
}

func (f *fakeDonors) FetchSnapshot(_ context.Context, from []peer.ID, _ [32]byte, dst []byte, by []peer.ID) error {
	f.calls++
	k := 0
	for i := range by {
		if by[i] != "" {
			continue
		}
		id := peer.ID("")
		for j := range from { // a chunk a donor fails to send goes to the next
			if c := from[(k+j)%len(from)]; !f.down[c] {
				id = c
				break
			}
		}
		k++
		if id == "" {
			continue
		}
		lo := i * p2p.MaxSnapshotChunk
		hi := min(len(dst), lo+p2p.MaxSnapshotChunk)
		copy(dst[lo:hi], f.data[id][lo:hi])
		by[i] = id
	}
	if slices.Contains(by, "") {
		return p2p.ErrSnapshotIncomplete
	}
	return nil
}

// A snapshot fetch whose parallel result does not hash right takes the
// snapshot whole from one donor at a time: the corrupt donors are named bad
// and the honest bytes are accepted; with no honest donor it fails, naming
// every corrupt one; an honest fetch names every donor that sent a chunk.
func TestSnapshotFetchFindsCorruptDonors(t *testing.T) {
	ctx := context.Background()
	good := make([]byte, 3*p2p.MaxSnapshotChunk+12)
	for i := range good {
		good[i] = byte(i * 7)
	}
	hash := sha256.Sum256(good)
	hashOf := func(b []byte) ([32]byte, error) { return sha256.Sum256(b), nil }
	corrupt := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 1
		return b
	}
	h1, h2, c1, c2, off := peer.ID("honest1"), peer.ID("honest2"), peer.ID("corrupt1"), peer.ID("corrupt2"), peer.ID("offline")
	donors := &fakeDonors{data: map[peer.ID][]byte{h1: good, h2: good, c1: corrupt(1), c2: corrupt(3*p2p.MaxSnapshotChunk + 5), off: good}, down: map[peer.ID]bool{off: true}}

	f := newSnapFetch(hash, uint64(len(good)))
	used, bad, err := f.fetch(ctx, donors, []peer.ID{h1, h2}, hashOf)
	if err != nil || len(bad) != 0 || !slices.Equal(used, []peer.ID{h1, h2}) || donors.calls != 1 {
		t.Fatalf("honest donors: used %v bad %v err %v after %d fetches", used, bad, err, donors.calls)
	}

	donors.calls = 0
	f = newSnapFetch(hash, uint64(len(good)))
	used, bad, err = f.fetch(ctx, donors, []peer.ID{c1, off, c2, h2}, hashOf)
	if err != nil || !bytes.Equal(f.raw, good) || !slices.Equal(used, []peer.ID{h2}) || !slices.Equal(bad, []peer.ID{c1, c2}) {
		t.Fatalf("corrupt donors among honest: used %v bad %v err %v, bytes right %v", used, bad, err, bytes.Equal(f.raw, good))
	}

	f = newSnapFetch(hash, uint64(len(good)))
	used, bad, err = f.fetch(ctx, donors, []peer.ID{c1, c2}, hashOf)
	if err == nil || len(used) != 0 || !slices.Equal(bad, []peer.ID{c1, c2}) || slices.ContainsFunc(f.by, func(id peer.ID) bool { return id != "" }) {
		t.Fatalf("corrupt donors only: used %v bad %v err %v, chunks kept %v", used, bad, err, f.by)
	}

	// An incomplete fetch keeps its chunks for the next call.
	f = newSnapFetch(hash, uint64(len(good)))
	if _, _, err = f.fetch(ctx, partial{donors, 1}, []peer.ID{h1}, hashOf); !errors.Is(err, p2p.ErrSnapshotIncomplete) {
		t.Fatalf("a donor gone after one chunk: %v, want ErrSnapshotIncomplete", err)
	}
	if f.by[0] != h1 || f.by[1] != "" {
		t.Fatalf("chunks held %v: want the honest donor's kept", f.by)
	}
	if used, _, err = f.fetch(ctx, donors, []peer.ID{h2}, hashOf); err != nil || !slices.Equal(used, []peer.ID{h1, h2}) {
		t.Fatalf("resumed: used %v err %v", used, err)
	}
}
