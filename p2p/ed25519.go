package p2p

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
)

// Ed25519 as zopeer verifies it (docs/PROTOCOL-WIRE.md §1.1): Go's
// crypto/ed25519.Verify (RFC 8032 without context, cofactorless: the
// signature's R must equal the canonical encoding of [S]B − [k]A, and S must
// be below the group order) plus two checks on the public key that Go leaves
// out: its encoding must be canonical (y < p, and no sign bit when x = 0) and
// the point must not be of small order (one of the 8 points of order 1, 2, 4
// or 8, with which anyone can forge signatures that verify). Honest keys
// (from a seed) are never either, so this refuses nothing an honest peer signs.

// smallOrderY are the y coordinates (little-endian) of the points of small
// order: 0 (order 4), 1 (the identity), two of order 8, and p − 1 (order 2).
var smallOrderY = func() [][32]byte {
	var out [][32]byte
	for _, h := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		var y [32]byte
		hex.Decode(y[:], []byte(h))
		out = append(out, y)
	}
	return out
}()

// fieldP is p = 2^255 − 19, little-endian.
var fieldP = [32]byte{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}

// StrictKey reports whether pub is a public key zopeer accepts: 32 bytes, a
// canonical encoding, not of small order. (Whether it is a point at all is
// left to Verify.)
func StrictKey(pub []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	var y [32]byte
	copy(y[:], pub)
	sign := y[31] >> 7
	y[31] &= 0x7f
	if !lessLE(y, fieldP) {
		return false // y ≥ p: a non-canonical encoding
	}
	one := [32]byte{1}
	pMinus1 := fieldP
	pMinus1[0]--
	if sign == 1 && (y == one || y == pMinus1) {
		return false // x = 0 has no negative: a non-canonical encoding
	}
	for _, s := range smallOrderY {
		if bytes.Equal(y[:], s[:]) {
			return false
		}
	}
	return true
}

// lessLE reports a < b for little-endian 256-bit integers.
func lessLE(a, b [32]byte) bool {
	for i := 31; i >= 0; i-- {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// verifySig is the one signature check of every message zopeer signs.
func verifySig(pub ed25519.PublicKey, msg, sig []byte) bool {
	return StrictKey(pub) && ed25519.Verify(pub, msg, sig)
}
