package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// transitionsShown is how many recent transitions GET /v1/components/{name}
// returns.
const transitionsShown = 50

// wireComponent is a supervisor status as the API shows it. A plugin stays
// RUNNING while scheduled, so its last_error shows its failing runs.
func (s *apiServer) wireComponent(st supervisor.Status) api.Component {
	c := api.Component{
		Name:         st.Name,
		Version:      st.Version,
		Kind:         string(st.Kind),
		State:        st.State.String(),
		Pid:          st.Pid,
		Restarts:     st.Restarts,
		Since:        st.Since,
		Health:       string(st.Health),
		LastError:    st.LastError,
		CPUPercent:   st.CPUPercent,
		RSSBytes:     st.RSSBytes,
		WaitingFor:   st.WaitingFor,
		HealthDetail: st.HealthDetail,
	}
	if st.Kind == recipes.KindPlugin && s.plugins != nil {
		if ps, err := s.plugins.Status(st.Name); err == nil && ps.Failing() {
			c.LastError = fmt.Sprintf("%d consecutive failed runs; last: %s", ps.ConsecutiveFailures, ps.LastError)
		}
	}
	return c
}

func (s *apiServer) listComponents(r *http.Request) (int, any, error) {
	return http.StatusOK, wireAll(s.sup.Snapshot(), s.wireComponent), nil
}

func (s *apiServer) getComponent(r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	evs, err := s.history.ComponentEvents(r.Context(), name, transitionsShown*2)
	if err != nil {
		return 0, nil, fmt.Errorf("transitions of %s: %w", name, err)
	}
	detail := api.ComponentDetail{Transitions: []api.Transition{}}
	for _, se := range evs {
		if e := fromStoreEvent(se); e.Kind == events.KindTransition {
			detail.Transitions = append(detail.Transitions,
				api.Transition{At: e.At, Version: e.Detail["version"], From: e.From, To: e.To, Reason: e.Reason})
		}
	}
	if n := len(detail.Transitions); n > transitionsShown {
		detail.Transitions = detail.Transitions[n-transitionsShown:]
	}
	st, err := s.sup.Component(name)
	switch {
	case errors.Is(err, supervisor.ErrNotFound) && len(detail.Transitions) > 0:
		// Removed (a rollback took it away): what it last was stays readable.
		detail.Component = removedComponent(name, detail.Transitions)
	case err != nil:
		return 0, nil, err // it names the component
	default:
		detail.Component = s.wireComponent(st)
	}
	return http.StatusOK, detail, nil
}

// removedComponent is a component no longer supervised as its recorded
// transitions (oldest first, at least one) last saw it.
func removedComponent(name string, ts []api.Transition) api.Component {
	last := ts[len(ts)-1]
	c := api.Component{Name: name, Version: last.Version, State: last.To, Since: last.At, Removed: true}
	for _, t := range ts {
		if t.To == supervisor.StateErrored.String() || t.To == supervisor.StateBroken.String() {
			c.LastError = t.Reason
		}
	}
	return c
}

func (s *apiServer) actOnComponent(r *http.Request) (int, any, error) {
	name, action := r.PathValue("name"), r.PathValue("action")
	act := map[string]func(context.Context, string) (supervisor.State, error){
		"start": s.sup.StartComponent, "stop": s.sup.StopComponent, "restart": s.sup.RestartComponent,
	}[action]
	if act == nil {
		return notFound(r)
	}
	state, err := act(r.Context(), name)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", action, err) // err names the component
	}
	st, err := s.sup.Component(name)
	if err != nil { // removed by a deployment meanwhile: say what the action reached
		st = supervisor.Status{Name: name, State: state}
	}
	return http.StatusOK, s.wireComponent(st), nil
}
