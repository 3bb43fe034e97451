package p2p

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// LoadIdentity reads the node's private key from path, creating a fresh
// Ed25519 key there (mode 0600) if the file does not exist, so the peer ID
// and the machine id survive restarts.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("p2p: identity %s: %w", path, err)
		}
		if key.Type() != crypto.Ed25519 {
			return nil, fmt.Errorf("p2p: identity %s: key type %v, want Ed25519", path, key.Type())
		}
		if err := checkKeyPair(key); err != nil {
			return nil, fmt.Errorf("p2p: identity %s: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("p2p: identity: %w", err)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("p2p: generate identity: %w", err)
	}
	if err := SaveIdentity(path, key); err != nil {
		return nil, err
	}
	return key, nil
}

// SaveIdentity writes key to path (mode 0600) through a temporary file and a
// rename, so a crash never leaves a truncated key behind.
func SaveIdentity(path string, key crypto.PrivKey) error {
	b, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("p2p: marshal identity: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".identity-*")
	if err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("p2p: write identity: %w", err)
	}
	return nil
}

// checkKeyPair verifies that an Ed25519 private key's stored public half is
// the one its seed derives. A key file with flipped bytes would otherwise
// load as a machine whose signatures nobody accepts (its handshakes and
// batches all fail), with nothing logged.
func checkKeyPair(key crypto.PrivKey) error {
	raw, err := key.Raw()
	if err != nil {
		return err
	}
	if len(raw) != ed25519.PrivateKeySize {
		return fmt.Errorf("Ed25519 key of %d bytes, want %d: the file is damaged", len(raw), ed25519.PrivateKeySize)
	}
	derived := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize]).Public().(ed25519.PublicKey)
	if !bytes.Equal(derived, raw[ed25519.SeedSize:]) {
		return errors.New("the public half of the key is not the one its private half derives: the file is damaged; " +
			"restore it from a backup (a new key is a new machine: move the file away to create one)")
	}
	return nil
}
