package agent

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/supervisor"
)

// postAgentUpdate starts the agent's update of itself.
func (s *apiServer) postAgentUpdate(r *http.Request) (int, any, error) {
	var req api.AgentUpdateRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return 0, nil, badRequest("agent update request: %v", err)
	}
	st, err := s.update.request(req, "")
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, wireAgentUpdate(st, s.update.version), nil
}

// getAgentUpdate answers the last update.
func (s *apiServer) getAgentUpdate(*http.Request) (int, any, error) {
	st := s.update.current()
	if st.ID == "" {
		return 0, nil, fmt.Errorf("agent update: none yet: %w", supervisor.ErrNotFound)
	}
	return http.StatusOK, wireAgentUpdate(st, s.update.version), nil
}
