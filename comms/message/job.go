package message

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keystone-edge/keystone/ota/sign"
)

// Job kinds.
const (
	KindDeployment  = "deployment"
	KindAgentUpdate = "agent_update"
	KindCancel      = "cancel"
)

// MaxJobBytes bounds a job document: a manifest is a few KiB.
const MaxJobBytes = 256 << 10

// Job is the document a controller publishes, retained, on a device's
// …/jobs/notify. It is signed as a whole (see Sign); Signature is not part
// of what is signed.
type Job struct {
	JobID       string          `json:"job_id"`
	Kind        string          `json:"kind"`
	DeviceID    string          `json:"device_id"`
	CreatedAt   time.Time       `json:"created_at"`
	ExpiresAt   time.Time       `json:"expires_at"`
	RolloutID   string          `json:"rollout_id,omitempty"`
	Deployment  *DeploymentJob  `json:"deployment,omitempty"`
	AgentUpdate *AgentUpdateJob `json:"agent_update,omitempty"`
	Cancel      *CancelJob      `json:"cancel,omitempty"`
	Signature   *Signature      `json:"signature,omitempty"`
}

// DeploymentJob carries a deployment manifest as TOML text. The components
// it names come from the component repository, never from the message.
type DeploymentJob struct {
	Manifest string `json:"manifest"`
}

// AgentUpdateJob asks the agent to update itself to Version.
type AgentUpdateJob struct {
	Version string `json:"version"`
}

// CancelJob asks the device to cancel job JobID.
type CancelJob struct {
	JobID string `json:"job_id"`
}

// Signature is an ed25519 signature of the job's canonical JSON without
// its signature member.
type Signature struct {
	KeyID string `json:"key_id"`
	Sig   string `json:"sig"`
}

// Sign returns j as a signed document: canonical JSON with a signature
// member made by priv.
func (j Job) Sign(priv ed25519.PrivateKey) ([]byte, error) {
	j.Signature = nil
	return sign.SignJSONDocument(priv, j)
}

// Reasons a device refuses a job (its REJECTED status's error_code).
const (
	CodeSignatureInvalid = "SIGNATURE_INVALID"
	CodeExpired          = "EXPIRED"
	CodeWrongDevice      = "WRONG_DEVICE"
	CodeStale            = "STALE"
	CodeMalformed        = "MALFORMED"
	CodeUnsupported      = "UNSUPPORTED"
)

// RejectError is why a device refuses a job; Code is the status's
// error_code.
type RejectError struct {
	Code string
	Err  error
}

func (e *RejectError) Error() string { return e.Err.Error() }
func (e *RejectError) Unwrap() error { return e.Err }

func reject(code, format string, args ...any) *RejectError {
	return &RejectError{Code: code, Err: fmt.Errorf(format, args...)}
}

// ParseJob decodes a job document and checks what can be checked from the
// document alone, in this order: its form (MALFORMED), its signature
// against ring (SIGNATURE_INVALID), that it is for deviceID (WRONG_DEVICE)
// and not expired at now (EXPIRED). The job is returned whenever its id
// could be read, so that a refusal can be reported on its status topic;
// the error is then a *RejectError. Staleness needs the device's history
// and is the caller's to check.
func ParseJob(data []byte, ring *sign.Keyring, deviceID string, now time.Time) (*Job, error) {
	if len(data) > MaxJobBytes {
		return nil, reject(CodeMalformed, "job document is %d bytes, more than %d", len(data), MaxJobBytes)
	}
	var j Job
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, reject(CodeMalformed, "job document is not valid JSON: %v", err)
	}
	if j.JobID == "" {
		return nil, reject(CodeMalformed, "job document has no job_id")
	}
	if err := j.checkForm(); err != nil {
		return &j, err
	}
	if _, err := ring.VerifyJSONDocument(data); err != nil {
		return &j, reject(CodeSignatureInvalid, "job %s: signature: %v", j.JobID, signatureReason(err))
	}
	if j.DeviceID != deviceID {
		return &j, reject(CodeWrongDevice, "job %s is for device %q, not %q", j.JobID, j.DeviceID, deviceID)
	}
	if !now.Before(j.ExpiresAt) {
		return &j, reject(CodeExpired, "job %s expired at %s", j.JobID, j.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return &j, nil
}

// checkForm checks the fields a job of its kind needs.
func (j *Job) checkForm() error {
	if !validJobID(j.JobID) {
		return reject(CodeMalformed, "job id %q must be 1 to 128 of A-Z a-z 0-9 . _ -", j.JobID)
	}
	if j.CreatedAt.IsZero() || j.ExpiresAt.IsZero() {
		return reject(CodeMalformed, "job %s needs created_at and expires_at", j.JobID)
	}
	switch j.Kind {
	case KindDeployment:
		if j.Deployment == nil || j.Deployment.Manifest == "" {
			return reject(CodeMalformed, "deployment job %s has no deployment.manifest", j.JobID)
		}
	case KindAgentUpdate:
		if j.AgentUpdate == nil || j.AgentUpdate.Version == "" {
			return reject(CodeMalformed, "agent_update job %s has no agent_update.version", j.JobID)
		}
	case KindCancel:
		if j.Cancel == nil || j.Cancel.JobID == "" {
			return reject(CodeMalformed, "cancel job %s has no cancel.job_id", j.JobID)
		}
	default:
		return reject(CodeMalformed, "job %s has kind %q; want deployment, agent_update or cancel", j.JobID, j.Kind)
	}
	return nil
}

// ValidJobID reports whether id can be a job id: 1 to 128 of A-Z a-z 0-9
// . _ -, not "." or "..". A job id becomes a topic level, a file name and a
// deployment id, so a receiver must not use one that fails this.
func ValidJobID(id string) bool { return validJobID(id) }

// validJobID: job ids become topic levels, file names and deployment ids.
func validJobID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return id != "." && id != ".."
}

func signatureReason(err error) string {
	switch {
	case errors.Is(err, sign.ErrNoSignature):
		return "the job is not signed"
	case errors.Is(err, sign.ErrUnknownKey):
		return "signed with a key this device does not trust"
	}
	return "does not match the job's content under its key: the job was changed after it was signed"
}
