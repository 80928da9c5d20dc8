package agent

import (
	"context"
	"fmt"
	"net/http"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// transitionsShown is how many recent transitions GET /v1/components/{name}
// returns.
const transitionsShown = 50

// wireComponent is a supervisor status as the API shows it.
func wireComponent(st supervisor.Status) api.Component {
	return api.Component{
		Name:       st.Name,
		Version:    st.Version,
		Kind:       string(st.Kind),
		State:      st.State.String(),
		Pid:        st.Pid,
		Restarts:   st.Restarts,
		Since:      st.Since,
		Health:     string(st.Health),
		LastError:  st.LastError,
		CPUPercent: st.CPUPercent,
		RSSBytes:   st.RSSBytes,
	}
}

func (s *apiServer) listComponents(w http.ResponseWriter, r *http.Request) {
	snap := s.sup.Snapshot()
	out := make([]api.Component, 0, len(snap))
	for _, st := range snap {
		out = append(out, s.withPluginStatus(wireComponent(st), st))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *apiServer) getComponent(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, err := s.sup.Component(name)
	if err != nil {
		writeError(w, s.log, r, err) // it names the component
		return
	}
	evs, err := s.history.ComponentEvents(r.Context(), name, transitionsShown*2)
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("transitions of %s: %w", name, err))
		return
	}
	detail := api.ComponentDetail{Component: s.withPluginStatus(wireComponent(st), st), Transitions: []api.Transition{}}
	for _, e := range evs {
		if e.Kind != string(events.KindTransition) {
			continue
		}
		detail.Transitions = append(detail.Transitions, api.Transition{
			At: e.At, From: e.FromState, To: e.ToState, Reason: e.Reason,
		})
	}
	if n := len(detail.Transitions); n > transitionsShown {
		detail.Transitions = detail.Transitions[n-transitionsShown:]
	}
	writeJSON(w, http.StatusOK, detail)
}

func (s *apiServer) actOnComponent(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	var act func(context.Context, string) (supervisor.State, error)
	switch action {
	case "start":
		act = s.sup.StartComponent
	case "stop":
		act = s.sup.StopComponent
	case "restart":
		act = s.sup.RestartComponent
	default:
		s.notFound(w, r)
		return
	}
	state, err := act(r.Context(), name)
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("%s: %w", action, err)) // err names the component
		return
	}
	st, err := s.sup.Component(name)
	if err != nil { // removed by a deployment meanwhile: say what the action reached
		st = supervisor.Status{Name: name, State: state}
	}
	writeJSON(w, http.StatusOK, s.withPluginStatus(wireComponent(st), st))
}
