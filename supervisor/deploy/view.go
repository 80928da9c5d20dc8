package deploy

import (
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
func (e *Engine) view(d store.Deployment, steps []store.Step) Deployment {
	out := Deployment{
		ID: d.ID, Status: Status(d.Status), RolledBack: d.RolledBack, Error: d.Error, ErrorCode: Code(d.ErrorCode),
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FinishedAt: d.FinishedAt,
	}
	for _, step := range stepsOf(steps) {
		if step.Name == StepPlan && step.Status == StepDone {
			if plan, err := decodePlan(step.Detail); err == nil {
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
	return out
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

// planEntry is one item of the plan as checkpointed in the plan step's
// detail, a JSON array. Its names are those every agent has written: data
// folders of older agents must stay readable, so they never change.
type planEntry struct {
	Component   string     `json:"component"`
	Action      PlanAction `json:"action"`
	FromVersion string     `json:"from_version,omitempty"`
	ToVersion   string     `json:"to_version,omitempty"`
	Reason      string     `json:"reason,omitempty"`
}

func encodePlan(plan []PlanItem) (string, error) {
	rec := make([]planEntry, len(plan))
	for i, it := range plan {
		rec[i] = planEntry(it)
	}
	b, err := json.Marshal(rec)
	return string(b), err
}

func decodePlan(detail string) ([]PlanItem, error) {
	var rec []planEntry
	if err := json.Unmarshal([]byte(detail), &rec); err != nil {
		return nil, err
	}
	plan := make([]PlanItem, len(rec))
	for i, it := range rec {
		plan[i] = PlanItem(it)
	}
	return plan, nil
}

// waitingFor says what an unfinished deployment waits for, and since when.
func (e *Engine) waitingFor(d store.Deployment) (string, time.Time) {
	e.mu.Lock()
	r := e.running
	if r == nil || r.id != d.ID {
		ahead := ""
		if r != nil {
			ahead = r.id
		}
		e.mu.Unlock()
		if ahead == "" {
			return "its turn in the queue", d.CreatedAt
		}
		return "deployment " + ahead + " to finish", d.CreatedAt
	}
	step, since, waiting, s := r.step, r.since, r.waiting, r.set
	e.mu.Unlock()
	switch {
	case waiting != "":
		return waiting, since
	case step == checkpoint(StepStart, StepStarted) && s != nil:
		return notReady(s.names(), e.cfg.Supervisor.Snapshot()), since
	case step == checkpoint(StepFetch, StepStarted):
		return "artifacts to download and verify", since
	case step == checkpoint(StepStop, StepStarted):
		return "removed and changed components to stop", since
	case step == checkpoint(StepRollback, StepStarted):
		return "the previous set to be restored", since
	case step == "":
		return "its turn to start", d.UpdatedAt
	}
	return "the step after " + step, since
}

// notReady lists the components of names not yet ready, with their state.
func notReady(names []string, snap []supervisor.Status) string {
	byName := map[string]supervisor.Status{}
	for _, st := range snap {
		byName[st.Name] = st
	}
	var parts []string
	for _, n := range names {
		st, ok := byName[n]
		switch {
		case !ok:
			parts = append(parts, n+" (not supervised yet)")
		case st.Ready() || st.State == supervisor.StateFinished:
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
