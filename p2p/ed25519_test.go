package p2p

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"math/big"
	"slices"
	"testing"
)

// forgeForIdentity returns a signature that Go's crypto/ed25519 accepts for
// any message under a public key encoding the identity point: R = [S]B, for
// any S (here from a seed's clamped scalar, reduced mod ℓ), since [k]A = O.
func forgeForIdentity(seed byte) []byte {
	sd := make([]byte, 32)
	sd[0] = seed
	r := ed25519.NewKeyFromSeed(sd).Public().(ed25519.PublicKey)
	h := sha512.Sum512(sd)
	s := h[:32]
	s[0] &= 248
	s[31] &= 127
	s[31] |= 64
	n := new(big.Int).SetBytes(reverse(s))
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	n.Mod(n, l)
	sb := reverse(n.FillBytes(make([]byte, 32)))
	return append(append([]byte(nil), r...), sb...)
}

func reverse(b []byte) []byte {
	c := slices.Clone(b)
	slices.Reverse(c)
	return c
}

// TestStrictEd25519: keys Go's crypto/ed25519 accepts but zopeer refuses.
func TestStrictEd25519(t *testing.T) {
	msg := []byte("zopeer/batch/1 anything")
	sig := forgeForIdentity(7)
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000", // identity
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // identity, y = p + 1
		"0100000000000000000000000000000000000000000000000000000000000080", // identity, x = 0 with the sign bit
	} {
		pub, _ := hex.DecodeString(h)
		if !ed25519.Verify(pub, msg, sig) {
			t.Fatalf("%s: Go's ed25519 should accept the forgery", h)
		}
		if verifySig(pub, msg, sig) || StrictKey(pub) {
			t.Fatalf("%s: accepted", h)
		}
	}
	for _, y := range smallOrderY {
		for _, sign := range []byte{0, 0x80} {
			k := y
			k[31] |= sign
			if StrictKey(k[:]) {
				t.Fatalf("small-order key %x accepted", k)
			}
		}
	}
	// Honest keys pass.
	for i := range 64 {
		sd := make([]byte, 32)
		sd[1] = byte(i)
		sk := ed25519.NewKeyFromSeed(sd)
		if !verifySig(sk.Public().(ed25519.PublicKey), msg, ed25519.Sign(sk, msg)) {
			t.Fatal("honest key refused")
		}
	}
	// Non-canonical S (S + ℓ) is refused by Go already.
	sd := make([]byte, 32)
	sk := ed25519.NewKeyFromSeed(sd)
	good := ed25519.Sign(sk, msg)
	s := new(big.Int).SetBytes(reverse(good[32:]))
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	s.Add(s, l)
	bad := append(slices.Clone(good[:32]), reverse(s.FillBytes(make([]byte, 32)))...)
	if verifySig(sk.Public().(ed25519.PublicKey), msg, bad) {
		t.Fatal("non-canonical S accepted")
	}
}
