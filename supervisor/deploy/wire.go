package deploy

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
)

// wire answers a recorded deployment in the local API's shape: every step,
// the plan as checkpointed, and, while it is queued or runs, what it waits
// for and since when.
func (e *Engine) wire(d store.Deployment, steps []store.Step) api.Deployment {
	out := api.Deployment{
		ID: d.ID, Status: d.Status.String(), RolledBack: d.RolledBack, Error: d.Error, ErrorCode: d.ErrorCode,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	if !d.FinishedAt.IsZero() {
		t := d.FinishedAt
		out.FinishedAt = &t
	}
	for _, st := range steps {
		out.Steps = append(out.Steps, api.Step{Seq: st.Seq, Name: st.Name, Component: st.Component,
			Status: st.Status.String(), Detail: st.Detail, At: st.At})
		if st.Name == StepPlan && st.Status == store.StepDone {
			var plan []api.PlanItem
			if json.Unmarshal([]byte(st.Detail), &plan) == nil {
				out.Plan = plan
			}
			// The plan is in Plan; the step keeps a summary.
			out.Steps[len(out.Steps)-1].Detail = summarize(plan)
		}
	}
	if d.Status.Finished() {
		return out
	}
	what, since := e.waitingFor(d)
	if what != "" {
		out.WaitingFor, out.Since = what, &since
	}
	return out
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
	case step == checkpoint(StepStart, store.StepStarted) && s != nil:
		return notReady(s.names(), e.cfg.Supervisor.Snapshot()), since
	case step == checkpoint(StepFetch, store.StepStarted):
		return "artifacts to download and verify", since
	case step == checkpoint(StepStop, store.StepStarted):
		return "removed and changed components to stop", since
	case step == checkpoint(StepRollback, store.StepStarted):
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
