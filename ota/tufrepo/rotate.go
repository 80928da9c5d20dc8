package tufrepo

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Rotated says what RotateKey did.
type Rotated struct {
	Role        string
	OldKeyIDs   []string // key IDs the role no longer trusts
	NewKeyID    string
	RootVersion int64 // version of the root metadata that made the change
}

// RotateKey replaces the signing key of role (root, targets, snapshot or
// timestamp) with a fresh ed25519 key. It writes a new root version that
// trusts only the new key for role, signed by the current root key (and by
// the new one too when role is root, so devices can follow the chain of
// roots from the one they were enrolled with), then publishes targets (when
// role is targets), snapshot and timestamp under the new keys. The old
// private key is kept in keys/retired/ for the record; metadata it signs is
// refused by devices once they have seen the new root.
func RotateKey(dir, role string, opts Options) (Rotated, error) {
	if !slices.Contains(Roles, role) {
		return Rotated{}, fmt.Errorf("rotate key: unknown role %q (want one of %v)", role, Roles)
	}
	root, err := loadRoot(dir)
	if err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	oldRootKey, err := loadKey(dir, RoleRoot)
	if err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	oldKey, err := loadKey(dir, role)
	if err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	_, newPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	// The new key is on disk before any metadata trusts it.
	next := keyPath(dir, role) + ".next"
	if err := writeKeyFile(next, newPriv); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}

	res := Rotated{Role: role, OldKeyIDs: slices.Clone(root.Signed.Roles[role].KeyIDs)}
	for _, id := range res.OldKeyIDs {
		if err := root.Signed.RevokeKey(id, role); err != nil {
			return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
		}
	}
	k, err := tufKey(newPriv)
	if err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	if res.NewKeyID, err = k.ID(); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	if err := root.Signed.AddKey(k, role); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	root.Signed.Version++
	root.Signed.Expires = opts.expiry(RoleRoot)
	signers := []ed25519.PrivateKey{oldRootKey}
	if role == RoleRoot {
		signers = append(signers, newPriv)
	}
	if err := sign(root, signers...); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: sign root: %w", role, err)
	}
	if err := writeRoot(dir, root); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	res.RootVersion = root.Signed.Version

	retired := filepath.Join(keysDir(dir), "retired")
	if err := os.MkdirAll(retired, 0o700); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	oldID := "unknown"
	if ok, err := tufKey(oldKey); err == nil {
		if id, err := ok.ID(); err == nil {
			oldID = id[:16]
		}
	}
	if err := os.Rename(keyPath(dir, role), filepath.Join(retired, role+"-"+oldID+".key")); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: retire old key: %w", role, err)
	}
	if err := os.Rename(next, keyPath(dir, role)); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: %w", role, err)
	}
	if _, err := publish(dir, opts, role == RoleTargets); err != nil {
		return Rotated{}, fmt.Errorf("rotate %s key: publish: %w", role, err)
	}
	return res, nil
}

func writeKeyFile(path string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
