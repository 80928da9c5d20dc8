package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// newKey makes an ed25519 key and writes it to keyPath(dir, role), 0600.
func newKey(dir, role string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", role, err)
	}
	if err := os.MkdirAll(keysDir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("create keys folder: %w", err)
	}
	if err := writeKeyFile(keyPath(dir, role), priv); err != nil {
		return nil, fmt.Errorf("write %s key: %w", role, err)
	}
	return priv, nil
}

// loadKey reads the private key of role.
func loadKey(dir, role string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(keyPath(dir, role))
	if err != nil {
		return nil, fmt.Errorf("read %s key: %w", role, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read %s key %s: not a PEM private key", role, keyPath(dir, role))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s key: %w", role, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse %s key: not ed25519", role)
	}
	return priv, nil
}

func tufKey(priv ed25519.PrivateKey) (*metadata.Key, error) {
	return metadata.KeyFromPublicKey(priv.Public())
}

func signer(priv ed25519.PrivateKey) (signature.Signer, error) {
	return signature.LoadSigner(priv, crypto.Hash(0))
}

// sign replaces md's signatures with one by each key.
func sign[T metadata.Roles](md *metadata.Metadata[T], keys ...ed25519.PrivateKey) error {
	md.ClearSignatures()
	for _, k := range keys {
		s, err := signer(k)
		if err != nil {
			return err
		}
		if _, err := md.Sign(s); err != nil {
			return err
		}
	}
	return nil
}
