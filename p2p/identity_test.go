package p2p

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A key file with a flipped byte in either half (the private seed or the
// stored public key) no longer holds a key pair: LoadIdentity refuses it
// with a clear error instead of running as a machine nobody can verify.
func TestIdentityFlippedBytesRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity.key")
	if _, err := LoadIdentity(path); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The protobuf is a 4-byte header, the 32-byte seed, the 32-byte public key.
	for name, off := range map[string]int{"seed": len(good) - 40, "public half": len(good) - 5} {
		b := append([]byte(nil), good...)
		b[off] ^= 0x10
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadIdentity(path)
		if err == nil {
			t.Fatalf("a key with a flipped byte in its %s was accepted", name)
		}
		if !strings.Contains(err.Error(), "public half") || !strings.Contains(err.Error(), path) {
			t.Fatalf("flipped %s: unclear error: %v", name, err)
		}
	}
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(path); err != nil {
		t.Fatalf("the intact key: %v", err)
	}
}
