package sign

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Keyring is a set of trusted ed25519 public keys, the agent's
// trust.keys. It is not changed after it is made, so one Keyring may be used
// from many goroutines. The zero value and a nil *Keyring trust no key:
// every check fails with ErrUnknownKey.
type Keyring struct {
	keys []trustedKey // in the order given, without duplicates
}

type trustedKey struct {
	id     string
	pub    ed25519.PublicKey
	source string // file it was loaded from; "" when given as a value
}

// NewKeyring makes a Keyring of pubs. A key given twice is kept once.
func NewKeyring(pubs ...ed25519.PublicKey) (*Keyring, error) {
	k := &Keyring{}
	for i, pub := range pubs {
		if err := k.add(pub, ""); err != nil {
			return nil, fmt.Errorf("keyring key %d: %w", i, err)
		}
	}
	return k, nil
}

// LoadKeyring makes a Keyring of the public key files at paths. Every file
// must load; the error names the first one that does not.
func LoadKeyring(paths ...string) (*Keyring, error) {
	k := &Keyring{}
	for _, path := range paths {
		pub, err := LoadPublicKey(path)
		if err != nil {
			return nil, fmt.Errorf("load keyring: %w", err)
		}
		if err := k.add(pub, path); err != nil {
			return nil, fmt.Errorf("load keyring: %s: %w", path, err)
		}
	}
	return k, nil
}

func (k *Keyring) add(pub ed25519.PublicKey, source string) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	id := KeyID(pub)
	for _, have := range k.keys {
		if have.id != id {
			continue
		}
		if bytes.Equal(have.pub, pub) {
			return nil
		}
		return fmt.Errorf("key ID %s is shared by two different keys", id)
	}
	k.keys = append(k.keys, trustedKey{id: id, pub: bytes.Clone(pub), source: source})
	return nil
}

// Len returns how many keys the keyring trusts.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.keys)
}

// KeyIDs returns the IDs of the trusted keys in the order they were given.
func (k *Keyring) KeyIDs() []string {
	if k == nil {
		return nil
	}
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = key.id
	}
	return ids
}

// Lookup returns the trusted key with the given ID.
func (k *Keyring) Lookup(keyID string) (ed25519.PublicKey, bool) {
	if k == nil {
		return nil, false
	}
	for _, key := range k.keys {
		if key.id == keyID {
			return bytes.Clone(key.pub), true
		}
	}
	return nil, false
}

// VerifyDetached checks that sigFileContent, the content of a detached
// signature file, is a signature of data by one of the trusted keys, and
// returns that key's ID. Errors match ErrNoSignature (blank content),
// ErrUnknownKey (the keyring is empty) or ErrBadSignature (malformed, or
// made by no trusted key over these exact bytes).
func (k *Keyring) VerifyDetached(data, sigFileContent []byte) (keyID string, err error) {
	sig, err := DecodeSignature(sigFileContent)
	if err != nil {
		return "", err
	}
	if k.Len() == 0 {
		return "", fmt.Errorf("%w: no trusted keys", ErrUnknownKey)
	}
	for _, key := range k.keys {
		if ed25519.Verify(key.pub, data, sig) {
			return key.id, nil
		}
	}
	// An ed25519 signature does not say which key made it, so a file
	// changed after signing and a signature by an untrusted key look the
	// same: say both.
	return "", fmt.Errorf("%w: the signature does not match the file's content under any trusted key (%s): the file was changed after it was signed, or it was signed with a key that is not trusted",
		ErrBadSignature, strings.Join(k.KeyIDs(), ", "))
}

// VerifyFile checks the file at path against its detached signature
// `<path>.sig` with VerifyDetached, and returns the signing key's ID. A
// missing signature file is ErrNoSignature.
func (k *Keyring) VerifyFile(path string) (keyID string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	sigPath := SigPath(path)
	content, err := os.ReadFile(sigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("verify %s: %w: %s does not exist", path, ErrNoSignature, sigPath)
	}
	if err != nil {
		return "", fmt.Errorf("verify %s: %w", path, err)
	}
	keyID, err = k.VerifyDetached(data, content)
	if err != nil {
		return "", fmt.Errorf("verify %s: %w", path, err)
	}
	return keyID, nil
}
