package agent

import (
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// The one place where the deployment engine's types become the local API's
// wire types: the engine speaks its own language, the API keeps its JSON.

func wireAccepted(a deploy.Accepted) api.DeploymentAccepted {
	return api.DeploymentAccepted{ID: a.ID, Plan: wireAll(a.Plan, wirePlanItem),
		Existing: a.Existing, Status: string(a.Status), RollbackTo: a.RollbackTo}
}

func wirePlanItem(it deploy.PlanItem) api.PlanItem {
	return api.PlanItem{Component: it.Component, Action: string(it.Action),
		FromVersion: it.FromVersion, ToVersion: it.ToVersion, Reason: it.Reason}
}

func wireDeployment(d deploy.Deployment) api.Deployment {
	return api.Deployment{
		ID: d.ID, Status: string(d.Status), RolledBack: d.RolledBack, Error: d.Error, ErrorCode: string(d.ErrorCode),
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FinishedAt: optionalTime(d.FinishedAt),
		Plan: wireAll(d.Plan, wirePlanItem), WaitingFor: d.WaitingFor, Since: optionalTime(d.Since),
		Steps: wireAll(d.Steps, func(st deploy.Step) api.Step {
			return api.Step{Seq: st.Seq, Name: string(st.Name), Component: st.Component,
				Status: string(st.Status), Detail: st.Detail, At: st.At}
		}),
	}
}

// wireAll converts each of in. The result is never nil: a list is [] on the
// wire, never null (and an omitempty one is left out either way).
func wireAll[T, W any](in []T, wire func(T) W) []W {
	out := make([]W, len(in))
	for i, v := range in {
		out[i] = wire(v)
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
