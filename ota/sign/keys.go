package sign

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// PEM block types of the key files.
const (
	privateKeyBlock = "PRIVATE KEY" // PKCS#8
	publicKeyBlock  = "PUBLIC KEY"  // PKIX
)

// File modes of written key files. A private key is refused on load when any
// bit of insecureKeyBits is set.
const (
	privateKeyMode  = 0o600
	publicKeyMode   = 0o644
	insecureKeyBits = 0o077
)

// GenerateKey makes a new ed25519 key pair, reading entropy from random
// (crypto/rand.Reader when nil).
func GenerateKey(random io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// KeyID names pub by the first 16 hex characters of the SHA-256 of its raw
// 32 bytes. It returns "" for a slice that is not an ed25519 public key.
func KeyID(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return ""
	}
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// MarshalPrivateKey encodes priv as a PEM "PRIVATE KEY" block (PKCS#8).
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("encode private key: has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateKeyBlock, Bytes: der}), nil
}

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" block (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("encode public key: has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicKeyBlock, Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" block holding an ed25519
// PKCS#8 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, err := decodePEM(data, privateKeyBlock)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8 private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want ed25519", key)
	}
	return priv, nil
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" block holding an ed25519 PKIX
// key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, err := decodePEM(data, publicKeyBlock)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKIX public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want ed25519", key)
	}
	return pub, nil
}

func decodePEM(data []byte, wantType string) (*pem.Block, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM %q block found", wantType)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, wantType)
	}
	return block, nil
}

// maxKeyFileBytes bounds what is read of a key file: a PEM ed25519 key
// is about 120 bytes.
const maxKeyFileBytes = 16 << 10

// LoadPrivateKey reads a private key file. It refuses, with
// ErrInsecureKeyFile, a file whose mode gives group or others any access.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	// Read a little before judging the mode: a public key given by mistake
	// deserves that answer, not advice to chmod it.
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes))
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w", path, err)
	}
	if block, _ := pem.Decode(data); block != nil && block.Type == publicKeyBlock {
		return nil, fmt.Errorf("load private key %s: this is a public key; sign with the private key (the .key file made by keystonectl keys generate)", path)
	}
	if perm := info.Mode().Perm(); perm&insecureKeyBits != 0 {
		return nil, fmt.Errorf("load private key %s: %w: mode is %04o, must be 0600 or stricter (run: chmod 600 %s)",
			path, ErrInsecureKeyFile, perm, path)
	}
	priv, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w", path, err)
	}
	return priv, nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	return pub, nil
}

// WritePrivateKey writes priv to a new file at path with mode 0600. It never
// replaces an existing file (the error then matches fs.ErrExist).
func WritePrivateKey(path string, priv ed25519.PrivateKey) error {
	data, err := MarshalPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("write private key %s: %w", path, err)
	}
	if err := writeNewFile(path, data, privateKeyMode); err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	return nil
}

// WritePublicKey writes pub to a new file at path with mode 0644. It never
// replaces an existing file (the error then matches fs.ErrExist).
func WritePublicKey(path string, pub ed25519.PublicKey) error {
	data, err := MarshalPublicKey(pub)
	if err != nil {
		return fmt.Errorf("write public key %s: %w", path, err)
	}
	if err := writeNewFile(path, data, publicKeyMode); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}

// WriteKeyPair writes NAME.key (mode 0600) and NAME.pub (mode 0644) for the
// pair, where NAME is base. It replaces neither file; if the public key
// cannot be written the new private key file is removed again.
func WriteKeyPair(base string, pub ed25519.PublicKey, priv ed25519.PrivateKey) (keyPath, pubPath string, err error) {
	keyPath, pubPath = base+".key", base+".pub"
	for _, path := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(path); err == nil {
			return "", "", fmt.Errorf("write key pair: %s: %w", path, fs.ErrExist)
		}
	}
	if err := WritePrivateKey(keyPath, priv); err != nil {
		return "", "", fmt.Errorf("write key pair: %w", err)
	}
	if err := WritePublicKey(pubPath, pub); err != nil {
		return "", "", errors.Join(fmt.Errorf("write key pair: %w", err), os.Remove(keyPath))
	}
	return keyPath, pubPath, nil
}

// writeNewFile creates path (which must not exist) with mode perm, writes
// data and syncs it. A partly written file is removed.
func writeNewFile(path string, data []byte, perm os.FileMode) (retErr error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	// The umask can only clear bits; set the mode exactly as asked.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
