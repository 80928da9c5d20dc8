package agent

import (
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

func (s *apiServer) postDeployment(r *http.Request) (int, any, error) {
	dr, dryRun, err := decodeDeploymentRequest(r)
	if err != nil {
		return 0, nil, err
	}
	if dryRun {
		plan, err := s.deploys.Plan(r.Context(), dr)
		if err != nil {
			return 0, nil, fmt.Errorf("plan: %w", err)
		}
		return http.StatusOK, api.DeploymentAccepted{Plan: wireAll(plan, wirePlanItem)}, nil
	}
	acc, err := s.deploys.Submit(r.Context(), dr)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, wireAccepted(acc), nil
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

func (s *apiServer) listDeployments(r *http.Request) (int, any, error) {
	limit, err := intParam(r, "limit", defaultDeploymentList, maxDeploymentList)
	if err != nil {
		return 0, nil, err
	}
	list, err := s.deploys.List(r.Context(), limit)
	if err != nil {
		return 0, nil, fmt.Errorf("list deployments: %w", err)
	}
	return http.StatusOK, wireAll(list, wireDeployment), nil
}

func (s *apiServer) getDeployment(r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	d, err := s.deploys.Get(r.Context(), id)
	if err != nil {
		return 0, nil, err // it names the deployment
	}
	return http.StatusOK, wireDeployment(d), nil
}

// cancelDeployment answers the deployment as it is once the cancel is
// requested.
func (s *apiServer) cancelDeployment(r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	if err := s.deploys.Cancel(r.Context(), id); err != nil {
		return 0, nil, err // it names the deployment
	}
	_, d, err := s.getDeployment(r)
	return http.StatusAccepted, d, err
}

// rollbackDeployment queues the rollback, or with ?dry_run=1 answers
// only its plan.
func (s *apiServer) rollbackDeployment(r *http.Request) (int, any, error) {
	dryRun, err := boolParam(r, "dry_run")
	if err != nil {
		return 0, nil, err
	}
	acc, err := s.deploys.Rollback(r.Context(), dryRun)
	if err != nil {
		return 0, nil, err // it says it is a rollback
	}
	if dryRun {
		return http.StatusOK, wireAccepted(acc), nil
	}
	return http.StatusAccepted, wireAccepted(acc), nil
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
