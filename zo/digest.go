package zo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
)

// SetDigest summarises a set of updates independently of order: the sum,
// modulo 2^256, of SHA-256(domain || machine || sample || exp || code) over the
// set, plus ExclusionHash(m) for each excluded machine m, read as little-endian
// 256-bit integers. Adding and subtracting are incremental, so a peer keeps it
// current as updates arrive and as a machine's updates are removed. It detects divergence between honest
// peers; it is not meant to resist an adversary who chooses many updates.
type SetDigest [32]byte

const (
	setDomain   = "zopeer/update/v1\x00"
	setDomainV2 = "zopeer/update/v2\x00" // slotted updates (FedKSeed-Pro runs)
)

// UpdateHash is the per-update term of the set digest. A slotted update
// (a FedKSeed-Pro run, pro.go) hashes its slot too, under a domain of its
// own, so every other run keeps its terms.
func UpdateHash(u Update) [32]byte {
	if u.Slotted {
		var b [len(setDomainV2) + 19]byte
		n := copy(b[:], setDomainV2)
		binary.BigEndian.PutUint64(b[n:], u.Machine)
		binary.BigEndian.PutUint64(b[n+8:], u.Sample)
		b[n+16], b[n+17], b[n+18] = u.Exp, byte(u.Code), u.Slot
		return sha256.Sum256(b[:])
	}
	var b [len(setDomain) + 18]byte
	n := copy(b[:], setDomain)
	binary.BigEndian.PutUint64(b[n:], u.Machine)
	binary.BigEndian.PutUint64(b[n+8:], u.Sample)
	b[n+16] = u.Exp
	b[n+17] = byte(u.Code)
	return sha256.Sum256(b[:])
}

const exclusionDomain = "zopeer/exclusion/v1\x00"

// ExclusionHash is the set digest's term for an excluded machine:
// SHA-256("zopeer/exclusion/v1" || 0x00 || u64be(machine)). A set that excludes
// machine m holds none of m's updates and adds this term once instead, so two
// peers agree on the digest only if they agree on the exclusions too.
func ExclusionHash(machine uint64) [32]byte {
	var b [len(exclusionDomain) + 8]byte
	n := copy(b[:], exclusionDomain)
	binary.BigEndian.PutUint64(b[n:], machine)
	return sha256.Sum256(b[:])
}

// Add includes u in the set.
func (d *SetDigest) Add(u Update) { d.AddHash(UpdateHash(u)) }

// Sub removes u from the set: the inverse of Add.
func (d *SetDigest) Sub(u Update) { d.SubHash(UpdateHash(u)) }

// AddHash adds one term (an UpdateHash or an ExclusionHash), modulo 2^256.
func (d *SetDigest) AddHash(h [32]byte) {
	var carry uint64
	for i := 0; i < 32; i += 8 {
		var s uint64
		s, carry = bits.Add64(binary.LittleEndian.Uint64(d[i:]), binary.LittleEndian.Uint64(h[i:]), carry)
		binary.LittleEndian.PutUint64(d[i:], s)
	}
}

// SubHash subtracts one term, modulo 2^256: the inverse of AddHash.
func (d *SetDigest) SubHash(h [32]byte) {
	var borrow uint64
	for i := 0; i < 32; i += 8 {
		var s uint64
		s, borrow = bits.Sub64(binary.LittleEndian.Uint64(d[i:]), binary.LittleEndian.Uint64(h[i:]), borrow)
		binary.LittleEndian.PutUint64(d[i:], s)
	}
}

func (d SetDigest) String() string { return hex.EncodeToString(d[:]) }
