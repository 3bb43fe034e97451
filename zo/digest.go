package zo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
)

// SetDigest summarises a set of updates independently of order: the sum,
// modulo 2^256, of SHA-256(domain || machine || sample || exp || code) over the
// set, read as little-endian 256-bit integers. Adding is incremental, so a peer
// keeps it current as updates arrive. It detects divergence between honest
// peers; it is not meant to resist an adversary who chooses many updates.
type SetDigest [32]byte

const setDomain = "zopeer/update/v1\x00"

// UpdateHash is the per-update term of the set digest.
func UpdateHash(u Update) [32]byte {
	var b [len(setDomain) + 18]byte
	n := copy(b[:], setDomain)
	binary.BigEndian.PutUint64(b[n:], u.Machine)
	binary.BigEndian.PutUint64(b[n+8:], u.Sample)
	b[n+16] = u.Exp
	b[n+17] = byte(u.Code)
	return sha256.Sum256(b[:])
}

// Add includes u in the set.
func (d *SetDigest) Add(u Update) {
	h := UpdateHash(u)
	var carry uint64
	for i := 0; i < 32; i += 8 {
		var s uint64
		s, carry = bits.Add64(binary.LittleEndian.Uint64(d[i:]), binary.LittleEndian.Uint64(h[i:]), carry)
		binary.LittleEndian.PutUint64(d[i:], s)
	}
}

func (d SetDigest) String() string { return hex.EncodeToString(d[:]) }
