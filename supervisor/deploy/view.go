package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
)

// view answers a recorded deployment: every step, the plan as
// checkpointed, and, while it is queued or runs, what it waits for and
// since when.
func (e *Engine) view(ctx context.Context, d store.Deployment) (Deployment, error) {
	recorded, err := e.cfg.Store.Steps(ctx, d.ID)
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: steps: %w", d.ID, err)
	}
	out := Deployment{
		ID: d.ID, Status: Status(d.Status), RolledBack: d.RolledBack, Error: d.Error, ErrorCode: Code(d.ErrorCode),
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FinishedAt: d.FinishedAt,
	}
	for _, step := range stepsOf(recorded) {
		if step.Name == StepPlan && step.Status == StepDone {
			var plan []PlanItem
			if json.Unmarshal([]byte(step.Detail), &plan) == nil {
				out.Plan = plan
			}
			// The plan is in Plan; the step keeps a summary.
			step.Detail = summarize(out.Plan)
		}
		out.Steps = append(out.Steps, step)
	}
	if !out.Status.Finished() {
		out.WaitingFor, out.Since = e.waitingFor(d)
	}
	return out, nil
}

// stepsOf reads recorded checkpoints.
func stepsOf(recorded []store.Step) []Step {
	out := make([]Step, len(recorded))
	for i, st := range recorded {
		out[i] = Step{Seq: st.Seq, Name: StepName(st.Name), Component: st.Component,
			Status: StepStatus(st.Status), Detail: st.Detail, At: st.At}
	}
	return out
}

// waitingFor says what an unfinished deployment waits for, and since when.
func (e *Engine) waitingFor(d store.Deployment) (string, time.Time) {
	e.mu.Lock()
	r := e.running
	if r == nil || r.id != d.ID {
		e.mu.Unlock()
		if r == nil {
			return "its turn in the queue", d.CreatedAt
		}
		return "deployment " + r.id + " to finish", d.CreatedAt
	}
	step, since, waiting, s := r.step, r.since, r.waiting, r.set
	e.mu.Unlock()
	switch {
	case waiting != "":
		return waiting, since
	case step == checkpoint(StepStart, StepStarted) && s != nil:
		return e.notReady(s.names()), since
	case step == checkpoint(StepFetch, StepStarted):
		return "artifacts to download and verify", since
	case step == checkpoint(StepStop, StepStarted):
		return "removed and changed components to stop", since
	case step == checkpoint(StepRollback, StepStarted):
		return "the previous set to be restored", since
	case step == "":
		return "its turn to start", d.UpdatedAt
	}
	if work, ok := nextStepWork[step]; ok {
		return work, since
	}
	return "its next step", since
}

// nextStepWork says what a deployment does between a recorded checkpoint
// and the next one.
var nextStepWork = map[string]string{
	checkpoint(StepValidate, StepDone): "the artifacts to be fetched",
	checkpoint(StepFetch, StepDone):    "the plan to be recorded",
	checkpoint(StepPlan, StepDone):     "removed and changed components to stop",
	checkpoint(StepStop, StepDone):     "the new components to be installed and started",
	checkpoint(StepStart, StepDone):    "the commit to be recorded",
	checkpoint(StepStart, StepFailed):  "the failure to be handled (rollback or keep)",
	checkpoint(StepRollback, StepDone): "the rollback to be recorded",
}

// notReady lists the components of names not yet ready, with their state.
func (e *Engine) notReady(names []string) string {
	sts := e.states()
	var parts []string
	for _, n := range names {
		st, ok := sts[n]
		switch {
		case !ok:
			parts = append(parts, n+" (not supervised yet)")
		case st.Ready() || st.State == supervisor.StateFinished:
		case st.HealthDetail != "":
			parts = append(parts, fmt.Sprintf("%s (%s: %s)", n, st.State, st.HealthDetail))
		case st.State == supervisor.StateRunning:
			parts = append(parts, fmt.Sprintf("%s (RUNNING, health %s)", n, st.Health))
		default:
			parts = append(parts, fmt.Sprintf("%s (%s)", n, st.State))
		}
	}
	if len(parts) == 0 {
		return "every component to be RUNNING and healthy"
	}
	return "RUNNING and healthy: " + strings.Join(parts, ", ")
}
