package conformance

import (
	"crypto/ed25519"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func cryptoKey(k ed25519.PrivateKey) (crypto.PrivKey, error) {
	return crypto.UnmarshalEd25519PrivateKey(k)
}
