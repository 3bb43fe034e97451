package p2p

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// A peer that banned a machine keeps its batches without listing them;
// another peer that wants them (an accusation's basis) gets them by Want.
func TestWantFetchesUnlistedBatches(t *testing.T) {
	a, b := newTestPeer(t, "run", nil), newTestPeer(t, "run", nil)
	x := fixedKey(t, 9)
	for i := range 3 {
		bt, err := SignBatch(x, a.RunTag(), uint64(16*i), 10, testCodes(16, i))
		if err != nil {
			t.Fatal(err)
		}
		a.log.Store(bt)
	}
	mx := MachineOf(mustPub(t, x))
	// Banned at a: its updates leave the set and the digest's holdings, its
	// batches stay (as store.Store.Ban keeps them).
	a.log.mu.Lock()
	a.log.excl[mx] = []byte("ban")
	for k := range a.log.ups {
		if k[0] == mx {
			delete(a.log.ups, k)
		}
	}
	delete(a.log.holds, mx)
	a.log.mu.Unlock()
	connectAll(t, a, b)
	b.Want(mx, Ranges{{Lo: 0, Hi: 47}})
	waitFor(t, "the wanted batches", func() bool {
		b.SyncNow(context.Background())
		_, ok, _ := b.log.Get(mx, 47)
		return ok
	})
	if n := len(b.log.batches[mx]); n != 3 {
		t.Fatalf("b holds %d batches of the banned machine, want 3", n)
	}
}

func mustPub(t *testing.T, k crypto.PrivKey) ed25519.PublicKey {
	t.Helper()
	raw, err := k.GetPublic().Raw()
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.PublicKey(raw)
}
