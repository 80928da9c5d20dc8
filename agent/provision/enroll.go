package provision

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/keystone-edge/keystone/comms/pki"
)

// EnrollResult is what Enroll did.
type EnrollResult struct {
	// CSR is the PEM certificate signing request for the device key.
	CSR []byte
	// KeyFile is the key's path; Created says whether Enroll made it (else
	// an existing key was used: a renewal keeps the key).
	KeyFile string
	Created bool
	// Owner is who owns the key ("user:group"); "" when the keystone
	// account does not exist here and the key stays the caller's.
	Owner string
}

// Enroll is the device's half of enrollment: it makes the device key at
// keyFile (P-256, mode 0600, owned by the keystone account of root's
// etc/passwd when there is one) unless a key is there already, and returns
// a signing request for it with common name deviceID. The key never leaves
// the device; the CA signs the request (keystonectl ca issue --csr).
func Enroll(root, keyFile, deviceID string) (*EnrollResult, error) {
	if !idPattern.MatchString(deviceID) {
		return nil, fmt.Errorf("enroll: device id %q must be 1 to 128 of A-Z a-z 0-9 . _ -", deviceID)
	}
	res := &EnrollResult{KeyFile: keyFile}
	var key crypto.Signer
	switch _, err := os.Lstat(keyFile); {
	case err == nil:
		if key, err = pki.LoadKey(keyFile); err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
	case errors.Is(err, fs.ErrNotExist):
		k, err := pki.GenerateKey(nil)
		if err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		data, err := pki.MarshalKey(k)
		if err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(keyFile), modeDir); err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		if err := pki.WriteNew(keyFile, data, modeKey); err != nil {
			return nil, fmt.Errorf("enroll: write the device key: %w", err)
		}
		key, res.Created = k, true
	default:
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if acct, err := LookupAccount(root, AccountName, AccountName); err == nil {
		if err := chmodChown(keyFile, modeKey, acct.UID, acct.GID); err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		res.Owner = acct.User + ":" + acct.Group
	}
	csr, err := pki.NewCSR(key, deviceID)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	res.CSR = csr
	return res, nil
}
