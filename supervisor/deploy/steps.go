package deploy

// The checkpointed steps of a deployment, in order (docs/deployments.md).
// Each is appended to the store as "started" and then "done" or "failed";
// FaultHook is called right after each append is durable with
// "<step>:<status>", e.g. "stop:started".
const (
	// StepValidate: the manifest and recipes were validated, resolved and
	// recorded (done only; appended by Submit with the QUEUED record).
	StepValidate StepName = "validate"
	// StepFetch: every artifact downloaded, verified and placed in its
	// version folder. Nothing running has been touched.
	StepFetch StepName = "fetch"
	// StepPlan: the plan and the previous set are recorded (done only).
	// From here on the deployment finishes or rolls back.
	StepPlan StepName = "plan"
	// StepStop: the new set is handed to the supervisor, which stops the
	// removed and changed components, dependents first, and installs the
	// new versions; done once every stop is over.
	StepStop StepName = "stop"
	// StepStart: components start in dependency order; done once every
	// one is RUNNING (and healthy) within health_timeout.
	StepStart StepName = "start"
	// StepCommit: the new set is recorded as current (done comes in one
	// transaction with the final status).
	StepCommit StepName = "commit"
	// StepRollback: the previous set is being restored (started names the
	// failure; done comes in one transaction with the final status).
	StepRollback StepName = "rollback"
)

// checkpoint is the name FaultHook is given.
func checkpoint(step StepName, status StepStatus) string {
	return string(step) + ":" + string(status)
}
