package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
)

// SigSuffix is appended to a file's path to name its detached signature.
const SigSuffix = ".sig"

// SigPath returns the path of file's detached signature, `<file>.sig`.
func SigPath(file string) string { return file + SigSuffix }

// Sign returns the 64-byte ed25519 signature of data. priv must be a
// well-formed key, as returned by GenerateKey or LoadPrivateKey; like
// ed25519.Sign, it panics on a key of the wrong length, which is a
// programming error rather than bad input.
func Sign(priv ed25519.PrivateKey, data []byte) []byte {
	return ed25519.Sign(priv, data)
}

// Verify checks that sig is pub's signature of data. It returns nil when it
// is, an error matching ErrNoSignature for an empty sig and one matching
// ErrBadSignature otherwise.
func Verify(pub ed25519.PublicKey, data, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if len(sig) == 0 {
		return ErrNoSignature
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature has %d bytes, want %d", ErrBadSignature, len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, data, sig) {
		return fmt.Errorf("%w: does not match key %s", ErrBadSignature, KeyID(pub))
	}
	return nil
}

// EncodeSignature returns the content of a detached signature file for sig:
// its standard base64 encoding and a newline.
func EncodeSignature(sig []byte) []byte {
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sig)), base64.StdEncoding.EncodedLen(len(sig))+1)
	base64.StdEncoding.Encode(out, sig)
	return append(out, '\n')
}

// DecodeSignature parses the content of a detached signature file. Blank
// content is ErrNoSignature; anything but the base64 of 64 bytes is
// ErrBadSignature.
func DecodeSignature(content []byte) ([]byte, error) {
	text := bytes.TrimSpace(content)
	if len(text) == 0 {
		return nil, fmt.Errorf("%w: signature file is empty", ErrNoSignature)
	}
	sig := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(sig, text)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64: %v", ErrBadSignature, err)
	}
	if n != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature has %d bytes, want %d", ErrBadSignature, n, ed25519.SignatureSize)
	}
	return sig[:n], nil
}

// SignFile signs file's exact bytes with the private key at keyPath and
// writes `<file>.sig`, replacing an older one. It returns the key's ID.
func SignFile(keyPath, file string) (keyID string, err error) {
	priv, err := LoadPrivateKey(keyPath)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", file, err)
	}
	if err := SignFileWithKey(priv, file); err != nil {
		return "", err
	}
	return KeyID(priv.Public().(ed25519.PublicKey)), nil
}

// SignFileWithKey signs file's exact bytes with priv and writes
// `<file>.sig` atomically (temporary file in the same folder, fsync,
// rename), replacing an older one.
func SignFileWithKey(priv ed25519.PrivateKey, file string) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign %s: private key has %d bytes, want %d", file, len(priv), ed25519.PrivateKeySize)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if err := writeFileAtomic(SigPath(file), EncodeSignature(Sign(priv, data)), publicKeyMode); err != nil {
		return fmt.Errorf("sign %s: %w", file, err)
	}
	return nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// folder is written, synced and renamed over path, so a reader sees the old
// content or the new one, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (retErr error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
