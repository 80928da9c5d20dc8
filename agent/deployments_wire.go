package agent

import (
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// The one place where the deployment engine's types become the local API's
// wire types: the engine speaks its own language, the API keeps its JSON.

func wireAccepted(a deploy.Accepted) api.DeploymentAccepted {
	return api.DeploymentAccepted{ID: a.ID, Plan: wirePlan(a.Plan)}
}

func wirePlan(plan []deploy.PlanItem) []api.PlanItem {
	if plan == nil {
		return nil
	}
	out := make([]api.PlanItem, len(plan))
	for i, it := range plan {
		out[i] = api.PlanItem{Component: it.Component, Action: string(it.Action),
			FromVersion: it.FromVersion, ToVersion: it.ToVersion, Reason: it.Reason}
	}
	return out
}

func wireDeployment(d deploy.Deployment) api.Deployment {
	out := api.Deployment{
		ID: d.ID, Status: string(d.Status), RolledBack: d.RolledBack, Error: d.Error, ErrorCode: string(d.ErrorCode),
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FinishedAt: optionalTime(d.FinishedAt),
		Plan: wirePlan(d.Plan), WaitingFor: d.WaitingFor, Since: optionalTime(d.Since),
	}
	for _, st := range d.Steps {
		out.Steps = append(out.Steps, api.Step{Seq: st.Seq, Name: string(st.Name), Component: st.Component,
			Status: string(st.Status), Detail: st.Detail, At: st.At})
	}
	return out
}

func wireDeployments(list []deploy.Deployment) []api.Deployment {
	out := make([]api.Deployment, len(list)) // never null on the wire
	for i, d := range list {
		out[i] = wireDeployment(d)
	}
	return out
}

// optionalTime is nil for the zero time, which the wire leaves out.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
