package p2p

import (
	"context"
	"crypto/sha256"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSnapshotFigures measures the network part of a join by snapshot on
// loopback: three donors serve the weights of a GPT-2-small-shaped model
// (124,439,808 int32, 498 MB) and hold a log of N updates (signed batches
// of 64 from 16 machines); a joiner fetches the weights from all three,
// hashes them, and fetches the updates by anti-entropy. A measurement, not
// a check: it runs only with ZOPEER_BENCH_SNAPSHOT set to the log sizes,
//
//	ZOPEER_BENCH_SNAPSHOT=100000,1000000 go test -run TestSnapshotFigures -v -timeout 30m ./p2p/
//
// (docs/BENCHMARKS.md, "Joining a long run").
func TestSnapshotFigures(t *testing.T) {
	v := os.Getenv("ZOPEER_BENCH_SNAPSHOT")
	if v == "" {
		t.Skip("set ZOPEER_BENCH_SNAPSHOT to log sizes to measure snapshot sync")
	}
	const params = 124439808
	data := make([]byte, 4*params)
	for i := range data {
		data[i] = byte(i*2654435761>>13) ^ byte(i)
	}
	info := SnapshotInfo{Hash: sha256.Sum256(data), Size: uint64(len(data))}
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(f, func(t *testing.T) { snapshotFigure(t, n, info, data) })
	}
}

func snapshotFigure(t *testing.T, n int, info SnapshotInfo, data []byte) {
	{
		const run = "snapshot-figures"
		var donors []*testPeer
		for range 3 {
			donors = append(donors, newTestPeer(t, run, func(o *Options) { o.Snapshots = &memSnap{info: info, data: data} }))
		}
		// 16 producers' signed batches of 64, in every donor's log.
		var keys []crypto.PrivKey
		for range 16 {
			k, _, err := crypto.GenerateEd25519Key(nil)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		for i := 0; i < n; i += 64 {
			b, err := SignBatch(keys[(i/64)%16], NewRunTag(run), uint64(i/64/16*64), 10, testCodes(min(64, n-i), i))
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range donors {
				d.log.Store(b)
			}
		}
		joiner := newTestPeer(t, run, nil)
		connectAll(t, append(donors, joiner)...)
		waitFor(t, "sync protocol known", func() bool { return len(joiner.syncPeers()) == 3 })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		start := time.Now()
		var from []peer.ID
		for _, o := range joiner.SnapshotOffers(ctx) {
			from = append(from, o.From)
		}
		dst := make([]byte, info.Size)
		if err := joiner.FetchSnapshot(ctx, from, info.Hash, dst, make([]peer.ID, (len(dst)+MaxSnapshotChunk-1)/MaxSnapshotChunk)); err != nil {
			t.Fatal(err)
		}
		fetched := time.Since(start)
		if sha256.Sum256(dst) != info.Hash {
			t.Fatal("the fetched weights differ")
		}
		hashed := time.Since(start)
		for joiner.log.Count() < n && ctx.Err() == nil {
			joiner.SyncNow(ctx)
		}
		cancel()
		if joiner.log.Count() != n {
			t.Fatalf("fetched %d of %d updates", joiner.log.Count(), n)
		}
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("RESULT log=%d weights_fetch=%.2fs (%.0f MB/s from %d donors) hash=%.2fs updates_fetch=%.2fs total=%.2fs load=%s",
			n, fetched.Seconds(), float64(len(dst))/1e6/fetched.Seconds(), len(from), (hashed - fetched).Seconds(),
			(time.Since(start) - hashed).Seconds(), time.Since(start).Seconds(), strings.Fields(string(load))[0])
	}
}
