package p2p

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"
)

func TestMintIdentityMeetsProofOfWork(t *testing.T) {
	for _, bits := range []int{0, 4, 10} {
		key, st, err := MintIdentity(context.Background(), "pow-run", bits, 2)
		if err != nil {
			t.Fatal(err)
		}
		got, err := KeyPowBits("pow-run", key.GetPublic())
		if err != nil {
			t.Fatal(err)
		}
		if got < bits {
			t.Fatalf("minted key has %d bits, want ≥ %d", got, bits)
		}
		if st.Tries == 0 {
			t.Fatal("no tries counted")
		}
	}
}

func TestPowBitsBindsTheRun(t *testing.T) {
	key, _, err := MintIdentity(context.Background(), "run-a", 12, 2)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := KeyPowBits("run-a", key.GetPublic())
	b, _ := KeyPowBits("run-b", key.GetPublic())
	if a < 12 {
		t.Fatalf("run-a: %d bits", a)
	}
	if b >= 12 {
		// 2^-12 chance for an unrelated digest; a fixed key keeps it reproducible.
		t.Logf("run-b also has %d bits (chance 1/4096)", b)
	}
	// A known answer pins the hash input layout (docs/PROTOCOL-WIRE.md).
	// Seed bytes 0xca 0x39 then 30 zeros: 14794 little-endian in the first bytes.
	seed := make([]byte, 32)
	seed[0], seed[1] = 0xca, 0x39
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if got := PowBits("example", pub); got != 18 {
		t.Fatalf("PowBits(example, seed ca39…) = %d, want 18", got)
	}
	seed[0] = 0
	if got := PowBits("example", ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)); got >= 18 {
		t.Fatalf("another key has %d bits too", got)
	}
}

func TestMintIdentityStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := MintIdentity(ctx, "r", 64, 2); err == nil {
		t.Fatal("minting 64 bits returned without error before the deadline")
	}
	if _, _, err := MintIdentity(context.Background(), "r", 65, 1); err == nil {
		t.Fatal("65 bits accepted")
	}
}

// BenchmarkMintTry is the cost of one try (key generation plus the hash).
func BenchmarkMintTry(b *testing.B) {
	seed := make([]byte, 32)
	for i := 0; i < b.N; i++ {
		seed[0], seed[1] = byte(i), byte(i>>8)
		sk := ed25519.NewKeyFromSeed(seed)
		PowBits("bench", sk.Public().(ed25519.PublicKey))
	}
}
