package p2p

import (
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
