package sign

import "errors"

// Sentinel errors, tested with errors.Is. The errors returned by this
// package wrap them with what was being checked.
var (
	// ErrBadSignature: a signature is present but does not verify: wrong
	// key, changed bytes, or a malformed signature.
	ErrBadSignature = errors.New("sign: bad signature")
	// ErrNoSignature: there is no signature to check (no `<file>.sig`, an
	// empty one, or a job document without a "signature" member).
	ErrNoSignature = errors.New("sign: no signature")
	// ErrUnknownKey: the signature names a key ID that is not trusted, or
	// there are no trusted keys at all.
	ErrUnknownKey = errors.New("sign: unknown key")
	// ErrInsecureKeyFile: a private key file may be read or written by group
	// or others.
	ErrInsecureKeyFile = errors.New("sign: private key file is accessible by group or others")
)
