package zo

import (
	"crypto/sha256"
	"encoding/binary"
)

// Seed selects one perturbation stream. Its 128 bits come from a SHA-256 of an
// injective encoding of (run, machine, sample): 64 bits key Philox, 64 bits sit
// in the high half of the counter, and the low half of the counter is the block
// index within the stream. Distinct (run, machine, sample) triples collide only
// if SHA-256 truncated to 128 bits does.
type Seed struct {
	Key    [2]uint32
	Stream [2]uint32
}

// seedDomain separates seed hashes from every other hash zopeer computes.
const seedDomain = "zopeer/seed/v1\x00"

// DeriveSeed returns the seed of the given machine's sample in a run.
// Encoding: domain || u32be(len(run)) || run || u64be(machine) || u64be(sample).
func DeriveSeed(run string, machine, sample uint64) Seed {
	sum := updateSeedHash(run, machine, sample)
	return seedOf(sum[:16])
}

// updateSeedHash is the SHA-256 behind an update's seed: bytes 0..15 make
// the seed, bytes 16..23 choose its pool seed in a pool-mode run (PoolIndex).
func updateSeedHash(run string, machine, sample uint64) [sha256.Size]byte {
	h := sha256.New()
	var buf [8]byte
	h.Write([]byte(seedDomain))
	binary.BigEndian.PutUint32(buf[:4], uint32(len(run)))
	h.Write(buf[:4])
	h.Write([]byte(run))
	binary.BigEndian.PutUint64(buf[:], machine)
	h.Write(buf[:])
	binary.BigEndian.PutUint64(buf[:], sample)
	h.Write(buf[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// seedOf reads a seed from 16 hash bytes: key from 0..7, stream from 8..15,
// as little-endian words.
func seedOf(b []byte) Seed {
	return Seed{
		Key:    [2]uint32{binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:])},
		Stream: [2]uint32{binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:])},
	}
}

// Block returns the 128 random bits of block b of the stream.
func (s Seed) Block(b uint64) [4]uint32 {
	x0, x1, x2, x3 := philox(uint32(b), uint32(b>>32), s.Stream[0], s.Stream[1], s.Key[0], s.Key[1])
	return [4]uint32{x0, x1, x2, x3}
}

// Auxiliary blocks (rounding uniforms) live at block indices no tensor reaches.
const (
	auxBlockCode  = 1 << 63       // the uniform that rounds this sample's projected gradient
	auxBlockCoeff = 1<<63 + 1<<62 // + tensor index: the uniform that rounds a tensor's coefficient
)

// uniform returns a float64 in [0, 1) with 53 random bits from block b.
func (s Seed) uniform(b uint64) float64 {
	r := s.Block(b)
	v := uint64(r[0])<<32 | uint64(r[1])
	return float64(v>>11) * 0x1p-53
}

// CodeUniform is the uniform that stochastically rounds this seed's projected
// gradient to its one-byte code. Deriving it from the seed keeps quantisation
// reproducible and lets anyone re-check a peer's rounding given its float g.
func (s Seed) CodeUniform() float64 { return s.uniform(auxBlockCode) }

// CoeffUniform is the uniform that stochastically rounds an update's
// coefficient on tensor t (its index in the layout): docs/PROTOCOL.md §2.
func (s Seed) CoeffUniform(t int) float64 { return s.uniform(auxBlockCoeff + uint64(t)) }
