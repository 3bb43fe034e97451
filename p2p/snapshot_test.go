package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// memSnap serves data as the snapshot described by info; a non-nil corrupt
// changes what it sends from offset corrupt on.
type memSnap struct {
	info    SnapshotInfo
	data    []byte
	corrupt int
}

func (m *memSnap) Snapshot() (SnapshotInfo, bool) { return m.info, true }

func (m *memSnap) ReadSnapshot(h [32]byte, off uint64, b []byte) (int, error) {
	if h != m.info.Hash || off >= uint64(len(m.data)) {
		return 0, nil
	}
	n := copy(b, m.data[off:])
	if m.corrupt > 0 && int(off) >= m.corrupt {
		n-- // a short chunk
	}
	return n, nil
}

func TestSnapshotInfoRoundTrip(t *testing.T) {
	in := SnapshotInfo{Count: 6, Hash: sha256.Sum256([]byte("w")), Size: 4 << 20,
		Included: []Holding{{Machine: 3, Samples: Ranges{{0, 4}}}, {Machine: 9, Samples: Ranges{{10, 10}}}}, Excluded: []uint64{5}}
	in.Digest[0] = 1
	b, err := encodeSnapInfo(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSnapInfo(b)
	if err != nil || got.Count != 6 || got.Hash != in.Hash || got.Size != in.Size || len(got.Included) != 2 || got.Excluded[0] != 5 {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, bad := range []func(SnapshotInfo) SnapshotInfo{
		func(s SnapshotInfo) SnapshotInfo { s.Count++; return s },                // count disagrees with the set
		func(s SnapshotInfo) SnapshotInfo { s.Size = 3; return s },               // not whole int32s
		func(s SnapshotInfo) SnapshotInfo { s.Included[0].Digest = 1; return s }, // per-machine digest set
	} {
		c := in
		c.Included = append([]Holding(nil), in.Included...)
		b, _ := encodeSnapInfo(bad(c))
		if _, err := decodeSnapInfo(b); err == nil {
			t.Fatal("a malformed snapshot info decoded")
		}
	}
	if _, err := decodeSnapInfo(b[:79]); err == nil {
		t.Fatal("a short info decoded")
	}
	q := SyncRequest{Kind: kindSnapData, Hash: in.Hash, Offset: 1 << 40}
	rq, err := decodeRequest(encodeRequest(NewRunTag("r"), q), NewRunTag("r"))
	if err != nil || rq != q {
		t.Fatalf("request %+v, %v", rq, err)
	}
	if len(encodeRequest(NewRunTag("r"), q)) > maxRequestSize {
		t.Fatal("a snapshot request exceeds maxRequestSize")
	}
}

// A joiner fetches a multi-chunk snapshot from two donors; one sends short
// chunks past its first megabyte, and the other supplies what it failed to.
// A fetch with only the bad donor is incomplete, and resumes from where it
// stopped once a good donor is given.
func TestFetchSnapshot(t *testing.T) {
	const run = "snapshot"
	data := make([]byte, 3*MaxSnapshotChunk+100)
	for i := range data {
		data[i] = byte(i * 31)
	}
	info := SnapshotInfo{Hash: sha256.Sum256(data), Size: uint64(len(data))}
	good := newTestPeer(t, run, func(o *Options) { o.Snapshots = &memSnap{info: info, data: data} })
	bad := newTestPeer(t, run, func(o *Options) { o.Snapshots = &memSnap{info: info, data: data, corrupt: MaxSnapshotChunk} })
	joiner := newTestPeer(t, run, nil)
	connectAll(t, good, bad, joiner)
	waitFor(t, "sync protocol known", func() bool { return len(joiner.syncPeers()) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	offers := joiner.SnapshotOffers(ctx)
	if len(offers) != 2 || offers[0].Info.Hash != info.Hash || offers[0].Info.Size != info.Size {
		t.Fatalf("offers %+v", offers)
	}
	dst := make([]byte, len(data))
	by := make([]peer.ID, 4)
	if err := joiner.FetchSnapshot(ctx, []peer.ID{bad.ID()}, info.Hash, dst, by); err == nil {
		t.Fatal("a donor sending short chunks completed the snapshot")
	}
	if by[0] != bad.ID() || by[1] != "" {
		t.Fatalf("chunks held from %v: want the first only, from the bad donor", by)
	}
	rejected := joiner.Stats().SyncRejected
	if rejected == 0 {
		t.Fatal("the short chunk was not counted as a violation")
	}
	if err := joiner.FetchSnapshot(ctx, []peer.ID{bad.ID(), good.ID()}, info.Hash, dst, by); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, data) {
		t.Fatal("the fetched snapshot differs")
	}
	if by[0] != bad.ID() || by[1] != good.ID() || by[2] != good.ID() || by[3] != good.ID() {
		t.Fatalf("chunks from %v: want the first from the bad donor, the rest from the good one", by)
	}
	// An unknown hash is answered with nothing.
	if err := joiner.FetchSnapshot(ctx, []peer.ID{good.ID()}, sha256.Sum256(nil), dst, make([]peer.ID, 4)); err == nil {
		t.Fatal("a snapshot the donor does not serve was fetched")
	}
}
