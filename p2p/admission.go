package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// Identity cost. In an open run anyone may contribute, but a machine's key
// must carry a proof of work: PowBits(run, key) ≥ the manifest's pow_bits.
// The proof is a property of the public key alone (no nonce travels), so
// every peer checks it from the batch it already holds, and minting k
// identities costs k·2^bits key generations (docs/DESIGN.md, "Identity cost").

const powDomain = "zopeer/pow/v1"

// PowBits is the number of leading zero bits of
// SHA-256("zopeer/pow/v1" || 0x00 || u32be(len(run)) || run || pub).
// Binding the run means an identity minted for one run is worth nothing in another.
func PowBits(run string, pub ed25519.PublicKey) int {
	h := sha256.New()
	h.Write([]byte(powDomain))
	h.Write([]byte{0})
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(run)))
	h.Write(n[:])
	h.Write([]byte(run))
	h.Write(pub)
	var d [32]byte
	h.Sum(d[:0])
	z := 0
	for i := 0; i < len(d); i += 8 {
		w := binary.BigEndian.Uint64(d[i:])
		z += bits.LeadingZeros64(w)
		if w != 0 {
			break
		}
	}
	return z
}

// KeyPowBits is PowBits of a libp2p Ed25519 key's public half.
func KeyPowBits(run string, key crypto.PubKey) (int, error) {
	raw, err := key.Raw()
	if err != nil || key.Type() != crypto.Ed25519 || len(raw) != ed25519.PublicKeySize {
		return 0, fmt.Errorf("p2p: identity key must be Ed25519")
	}
	return PowBits(run, ed25519.PublicKey(raw)), nil
}

// MintStats says what minting an identity cost.
type MintStats struct {
	Tries   uint64
	Elapsed time.Duration
}

// MintIdentity generates Ed25519 keys until one has PowBits(run, pub) ≥ want,
// on workers goroutines (GOMAXPROCS when workers < 1). It returns when it
// finds one or ctx ends; every worker has exited by then.
func MintIdentity(ctx context.Context, run string, want, workers int) (crypto.PrivKey, MintStats, error) {
	if want < 0 || want > 64 {
		return nil, MintStats{}, fmt.Errorf("p2p: proof of work of %d bits (want 0..64)", want)
	}
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tries atomic.Uint64
	var once sync.Once
	var found ed25519.PrivateKey
	var genErr error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var seed [ed25519.SeedSize]byte
			for n := uint64(0); ; n++ {
				if n%256 == 0 && ctx.Err() != nil {
					return
				}
				if _, err := rand.Read(seed[:]); err != nil {
					once.Do(func() { genErr = err })
					cancel()
					return
				}
				sk := ed25519.NewKeyFromSeed(seed[:])
				tries.Add(1)
				if PowBits(run, sk.Public().(ed25519.PublicKey)) >= want {
					once.Do(func() { found = sk })
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	st := MintStats{Tries: tries.Load(), Elapsed: time.Since(start)}
	if found == nil {
		if genErr != nil {
			return nil, st, fmt.Errorf("p2p: mint identity: %w", genErr)
		}
		return nil, st, fmt.Errorf("p2p: mint identity: %w", context.Cause(ctx))
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(found)
	if err != nil {
		return nil, st, fmt.Errorf("p2p: mint identity: %w", err)
	}
	return key, st, nil
}
