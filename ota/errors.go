package ota

import (
	"errors"
	"fmt"
)

// Reason is why fetching or verifying an artifact failed. Its values are the
// error codes a deployment job reports.
type Reason string

// The reasons a Fetcher or Repository fails with.
const (
	// ReasonDownloadFailed: the bytes could not be had (network, HTTP status,
	// scheme not allowed, size limit, missing target).
	ReasonDownloadFailed Reason = "DOWNLOAD_FAILED"
	// ReasonHashMismatch: bytes arrived but their sha256 or length differs
	// from what the recipe or the signed targets metadata promise.
	ReasonHashMismatch Reason = "HASH_MISMATCH"
	// ReasonSignatureInvalid: repository metadata is not signed by the
	// trusted keys (or by too few of them).
	ReasonSignatureInvalid Reason = "SIGNATURE_INVALID"
	// ReasonMetadataExpired: repository metadata is past its expiry.
	ReasonMetadataExpired Reason = "METADATA_EXPIRED"
	// ReasonRollbackAttack: the repository served metadata older than
	// metadata this device already trusted.
	ReasonRollbackAttack Reason = "ROLLBACK_ATTACK"
	// ReasonUnsafeArchive: an archive has entries escaping its folder, device
	// files, or exceeds the size or file-count limits.
	ReasonUnsafeArchive Reason = "UNSAFE_ARCHIVE"
	// ReasonDiskFull: the device ran out of space while writing.
	ReasonDiskFull Reason = "DISK_FULL"
)

// Error is a failure with a Reason callers branch on. Artifact names what
// failed: an artifact URI, a repository target path or a component version.
// Use errors.As to get it from a wrapped error.
type Error struct {
	Reason   Reason
	Artifact string
	Err      error
}

// Error returns "REASON: artifact: cause".
func (e *Error) Error() string {
	switch {
	case e.Artifact != "" && e.Err != nil:
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Artifact, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Reason, e.Err)
	case e.Artifact != "":
		return fmt.Sprintf("%s: %s", e.Reason, e.Artifact)
	default:
		return string(e.Reason)
	}
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of the first *Error in err's chain, and false
// when there is none.
func ReasonOf(err error) (Reason, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return "", false
}

// Sentinel causes wrapped inside an *Error where a caller or test needs to
// tell them apart from the Reason alone.
var (
	// ErrSchemeNotAllowed: the URI scheme is unknown, or http:// without
	// allow_http, or repo: without a configured repository.
	ErrSchemeNotAllowed = errors.New("ota: uri scheme not allowed")
	// ErrTooLarge: an artifact is larger than the configured size limit.
	ErrTooLarge = errors.New("ota: artifact exceeds size limit")
	// ErrNoTarget: the repository's signed targets do not list the path.
	ErrNoTarget = errors.New("ota: no such target in the repository")
	// ErrNoRelease: the repository lists no agent release of the version
	// asked for (with ErrNoTarget in the same chain).
	ErrNoRelease = errors.New("ota: no such agent release")
	// ErrNoReleaseBuild: the agent release exists, but not for the device's
	// OS and architecture (with ErrNoTarget in the same chain).
	ErrNoReleaseBuild = errors.New("ota: agent release not built for this platform")
	// ErrReleaseConflict: the folder an agent release is to be installed in
	// already holds other files than the signed release.
	ErrReleaseConflict = errors.New("ota: release folder holds other files")
)

// fail wraps err as an *Error with reason, unless err already carries one.
func fail(reason Reason, artifact string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Reason: reason, Artifact: artifact, Err: err}
}
