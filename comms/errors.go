package comms

import (
	"errors"

	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// Error codes of failed jobs besides the deployment engine's own (a
// deployment's ErrorCode, a refused deployment's ValidationError.Code).
const (
	// CodeNotFound: a cancel job named a job this device has no
	// deployment for.
	CodeNotFound = "NOT_FOUND"
	// CodeConflict: a cancel job named a deployment already finished, or a
	// deployment job reused a known deployment id for another manifest.
	CodeConflict = "CONFLICT"
	// CodeInternal: the device failed (its store or engine), not the job.
	CodeInternal = string(deploy.CodeInternal)
	// CodeAgentUpdateRefused: the agent did not take an agent_update job
	// (another update in progress, no repository configured).
	CodeAgentUpdateRefused = "AGENT_UPDATE_REFUSED"
)

// jobError turns an error of the Deployer into a job's error_code and
// detail: the one place where engine errors become wire codes.
func jobError(err error) (code, detail string) {
	var invalid *deploy.ValidationError
	switch {
	case errors.As(err, &invalid):
		return string(invalid.Code()), err.Error()
	case errors.Is(err, deploy.ErrNotFound):
		return CodeNotFound, err.Error()
	case errors.Is(err, deploy.ErrConflict):
		return CodeConflict, err.Error()
	}
	return CodeInternal, err.Error()
}
