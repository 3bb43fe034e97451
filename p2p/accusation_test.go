package p2p

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestAccusationDecoding(t *testing.T) {
	run := NewRunTag("run")
	accused, accuser := fixedKey(t, 1), fixedKey(t, 2)
	basis := AppendBasis(nil, Basis{{Machine: 9, Samples: Ranges{{0, 41}}}})
	b, err := SignBatchExt(accused, run, 100, 127, []int8{3, -3, 1}, []Ext{{ExtBasis, basis}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewAccusation(accuser, run, b.Raw, 101)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.IsAccusation() || ev.Machine != b.Machine || ev.Sample != 101 || ev.Accuser == b.Machine || ev.A.Codes[1] != -3 {
		t.Fatalf("decoded %+v", ev)
	}
	got, err := ev.Basis()
	if err != nil || len(got) != 1 || got[0].Machine != 9 {
		t.Fatalf("basis %v %v", got, err)
	}
	v1, err := SignBatch(accused, run, 100, 127, []int8{3})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		raw  func() []byte
		want error
	}{
		{"no basis", func() []byte { return rawAccusation(t, accuser, run, v1.Raw, 100) }, ErrNotAccusation},
		{"sample outside", func() []byte { return rawAccusation(t, accuser, run, b.Raw, 103) }, ErrNotAccusation},
		{"self", func() []byte { return rawAccusation(t, accused, run, b.Raw, 100) }, ErrNotAccusation},
		{"bad signature", func() []byte {
			r := slices.Clone(ev.Raw)
			r[len(r)-1] ^= 1
			return r
		}, ErrSignature},
		{"truncated", func() []byte { return ev.Raw[:len(ev.Raw)-1] }, ErrMalformed},
		{"trailing", func() []byte { return append(slices.Clone(ev.Raw), 0) }, ErrMalformed},
	} {
		if _, err := DecodeEvidence(c.raw(), run); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// rawAccusation signs an accusation without NewAccusation's validation.
func rawAccusation(t *testing.T, key crypto.PrivKey, run RunTag, batch []byte, sample uint64) []byte {
	t.Helper()
	sk, err := ed25519Key(key)
	if err != nil {
		t.Fatal(err)
	}
	e := append([]byte{WireVersion}, run[:]...)
	e = append(e, evidenceAccusation)
	e = append(e, sk.Public().(ed25519.PublicKey)...)
	e = appendUvarint(e, sample)
	e = appendUvarint(e, uint64(len(batch)))
	e = append(e, batch...)
	return append(e, ed25519.Sign(sk, signed(accusationDomain, e))...)
}

// A peer ignores an accuser after maxRejectedAccusations rejections.
func TestRejectedAccuserIgnored(t *testing.T) {
	tp := newTestPeer(t, "run", nil)
	run := tp.RunTag()
	accuser := fixedKey(t, 2)
	b, err := SignBatchExt(fixedKey(t, 1), run, 0, 127, []int8{1}, []Ext{{ExtBasis, AppendBasis(nil, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewAccusation(accuser, run, b.Raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= maxRejectedAccusations; i++ {
		if tp.accuserIgnored(ev.Accuser) {
			t.Fatalf("accuser ignored after %d rejections", i-1)
		}
		if ignored := tp.RejectAccusation(ev); ignored != (i == maxRejectedAccusations) {
			t.Fatalf("rejection %d: ignored %v", i, ignored)
		}
	}
	if !tp.accuserIgnored(ev.Accuser) {
		t.Fatal("accuser still heard after its rejections")
	}
}

// One accuser's accusations are relayed at a bounded rate.
func TestAccusationRate(t *testing.T) {
	tp := newTestPeer(t, "run", nil)
	now := time.Now()
	for i := range accusationBurst {
		if !tp.allowAccusation(7, now) {
			t.Fatalf("accusation %d of the burst refused", i)
		}
	}
	if tp.allowAccusation(7, now) {
		t.Fatal("an accusation beyond the burst allowed")
	}
	if !tp.allowAccusation(8, now) {
		t.Fatal("another accuser's first accusation refused")
	}
	if !tp.allowAccusation(7, now.Add(time.Duration(float64(time.Second)/accusationRate))) {
		t.Fatal("no token after the refill interval")
	}
}
