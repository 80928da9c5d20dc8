package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// Deployment listing bounds.
const (
	defaultDeploymentList = 20
	maxDeploymentList     = 1000
)

// localManifestName names a manifest that came over the API in errors: the
// client sends its text, not its file name.
const localManifestName = "deployment.toml"

// deployments is what the API needs of the deployment engine
// (*deploy.Engine); its answers become wire types in deployments_wire.go.
type deployments interface {
	Submit(ctx context.Context, req deploy.Request) (deploy.Accepted, error)
	Plan(ctx context.Context, req deploy.Request) ([]deploy.PlanItem, error)
	Cancel(ctx context.Context, id string) error
	Rollback(ctx context.Context) (deploy.Accepted, error)
	Get(ctx context.Context, id string) (deploy.Deployment, error)
	List(ctx context.Context, limit int) ([]deploy.Deployment, error)
}

func (s *apiServer) postDeployment(w http.ResponseWriter, r *http.Request) {
	dr, dryRun, err := decodeDeploymentRequest(r)
	if err != nil {
		writeError(w, s.log, r, err)
		return
	}
	if dryRun {
		plan, err := s.deploys.Plan(r.Context(), dr)
		if err != nil {
			writeError(w, s.log, r, fmt.Errorf("plan: %w", err))
			return
		}
		writeJSON(w, http.StatusOK, api.DeploymentAccepted{Plan: wirePlan(plan)})
		return
	}
	acc, err := s.deploys.Submit(r.Context(), dr)
	if err != nil {
		writeError(w, s.log, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, wireAccepted(acc))
}

// decodeDeploymentRequest reads a POST /v1/deployments body and refuses,
// before the engine sees it, what no deployment can be: not one JSON
// object, no manifest, or a file name that is not a clean, bounded,
// relative path (deploy.CheckFileNames), so that a name never reaches the
// disk to fail there.
func decodeDeploymentRequest(r *http.Request) (dr deploy.Request, dryRun bool, err error) {
	var req api.DeploymentRequest
	if err := decodeBody(r, &req); err != nil {
		return deploy.Request{}, false, err
	}
	if req.Manifest == "" {
		return deploy.Request{}, false, badRequest("the request has no manifest")
	}
	if err := deploy.CheckFileNames(req.Files); err != nil {
		return deploy.Request{}, false, err
	}
	return deploy.Request{
		Manifest:     []byte(req.Manifest),
		ManifestName: localManifestName,
		Files:        req.Files,
		Preempt:      req.Preempt,
		Origin:       "local",
	}, req.DryRun, nil
}

func (s *apiServer) listDeployments(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", defaultDeploymentList, maxDeploymentList)
	if err != nil {
		writeError(w, s.log, r, err)
		return
	}
	list, err := s.deploys.List(r.Context(), limit)
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("list deployments: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, wireDeployments(list))
}

func (s *apiServer) getDeployment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := s.deploys.Get(r.Context(), id)
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("deployment %s: %w", id, err))
		return
	}
	writeJSON(w, http.StatusOK, wireDeployment(d))
}

func (s *apiServer) cancelDeployment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.deploys.Cancel(r.Context(), id); err != nil {
		writeError(w, s.log, r, fmt.Errorf("cancel %s: %w", id, err))
		return
	}
	d, err := s.deploys.Get(r.Context(), id)
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("deployment %s: %w", id, err))
		return
	}
	writeJSON(w, http.StatusAccepted, wireDeployment(d))
}

func (s *apiServer) rollbackDeployment(w http.ResponseWriter, r *http.Request) {
	acc, err := s.deploys.Rollback(r.Context())
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("rollback: %w", err))
		return
	}
	writeJSON(w, http.StatusAccepted, wireAccepted(acc))
}

// decodeBody reads one JSON document into v, refusing unknown fields and
// trailing data. The body is already bounded (see apiServer.wrap), so an
// oversize one fails with *http.MaxBytesError.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body: %w", err)
		}
		if errors.Is(err, io.EOF) {
			return badRequest("the request body is empty; want a JSON object")
		}
		return badRequest("request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body: %w", err)
		}
		return badRequest("request body: data after the JSON object")
	}
	return nil
}
