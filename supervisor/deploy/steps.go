package deploy

import (
	"fmt"
	"strings"

	"github.com/keystone-edge/keystone/store"
)

// The checkpointed steps of a deployment, in order (docs/deployments.md).
// Each is appended to the store as "started" and then "done" or "failed";
// FaultHook is called right after each append is durable with
// "<step>:<status>", e.g. "stop:started".
const (
	// StepValidate: the manifest and recipes were validated, resolved and
	// recorded (done only; appended by Submit with the QUEUED record).
	StepValidate = "validate"
	// StepFetch: every artifact downloaded, verified and placed in its
	// version folder. Nothing running has been touched.
	StepFetch = "fetch"
	// StepPlan: the plan and the previous set are recorded (done only).
	// From here on the deployment finishes or rolls back.
	StepPlan = "plan"
	// StepStop: the new set is handed to the supervisor, which stops the
	// removed and changed components, dependents first, and installs the
	// new versions; done once every stop is over.
	StepStop = "stop"
	// StepStart: components start in dependency order; done once every
	// one is RUNNING (and healthy) within health_timeout.
	StepStart = "start"
	// StepCommit: the new set is recorded as current (done comes in one
	// transaction with the final status).
	StepCommit = "commit"
	// StepRollback: the previous set is being restored (started names the
	// failure; done comes in one transaction with the final status).
	StepRollback = "rollback"
)

// checkpoint is the name FaultHook is given.
func checkpoint(step string, status store.StepStatus) string {
	return step + ":" + string(status)
}

// resumeFrom is where a deployment found unfinished at start goes on.
type resumeFrom int

const (
	// resumeFresh: nothing running was touched; run it from the fetch.
	resumeFresh resumeFrom = iota
	// resumeApply: the plan is checkpointed and no failure recorded: hand
	// the new set to the supervisor again, wait for it, commit.
	resumeApply
	// resumeRollback: a failure or a cancel was recorded after the plan:
	// finish the rollback to the previous set.
	resumeRollback
	// resumeKeep: a failure was recorded under failure_policy = "keep":
	// apply the new set again and record the failure.
	resumeKeep
)

// resumePoint reads a deployment's checkpoints and says where it goes on,
// and, past a failure, the failure recorded. keep is the deployment's
// failure_policy = "keep". It is pure.
func resumePoint(steps []store.Step, keep bool) (resumeFrom, *failure) {
	planned := false
	var failed *failure
	for _, st := range steps {
		switch {
		case st.Name == StepPlan && st.Status == store.StepDone:
			planned = true
		case st.Name == StepRollback && st.Status == store.StepStarted:
			return resumeRollback, parseFailure(st.Detail)
		case planned && st.Status == store.StepFailed:
			failed = parseFailure(st.Detail)
		}
	}
	switch {
	case !planned:
		return resumeFresh, nil
	case failed == nil:
		return resumeApply, nil
	case keep && failed.code != CodeCanceled:
		return resumeKeep, failed
	}
	return resumeRollback, failed
}

// failureDetail is how a failure is written into a step's detail.
func failureDetail(f *failure) string { return f.code + ": " + f.err.Error() }

// parseFailure reads a detail written by failureDetail.
func parseFailure(detail string) *failure {
	code, msg, ok := strings.Cut(detail, ": ")
	if !ok || code == "" || strings.ToUpper(code) != code || strings.ContainsAny(code, " .") {
		return fail(CodeInternal, "%s", detail)
	}
	return fail(code, "%s", msg)
}

// String names where a resumed deployment goes on, for logs.
func (r resumeFrom) String() string {
	switch r {
	case resumeFresh:
		return "start"
	case resumeApply:
		return "apply"
	case resumeRollback:
		return "rollback"
	case resumeKeep:
		return "keep"
	}
	return fmt.Sprintf("resumeFrom(%d)", int(r))
}
