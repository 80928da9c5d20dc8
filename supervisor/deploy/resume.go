package deploy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/keystone-edge/keystone/store"
)

// currentKey is the store value naming the committed deployment.
const currentKey = "deploy/current"

// previousRecord is the set before a deployment, recorded with its plan
// (store.Deployment.Previous) so that a rollback needs nothing else.
type previousRecord struct {
	DeploymentID string            `json:"deployment_id,omitempty"` // "" = nothing was deployed
	Manifest     string            `json:"manifest,omitempty"`
	Recipes      map[string]string `json:"recipes,omitempty"`
}

func encodePrevious(s *set) (json.RawMessage, error) {
	return json.Marshal(previousRecord{DeploymentID: s.id, Manifest: s.manifestText, Recipes: s.recipeText})
}

func (e *Engine) decodePrevious(raw json.RawMessage) (*set, error) {
	var p previousRecord
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("previous set: %w", err)
	}
	if p.DeploymentID == "" {
		return emptySet(), nil
	}
	return e.rebuildSet(p.DeploymentID, p.Manifest, p.Recipes, admitRecorded)
}

// loadCurrent rebuilds the committed set from the store: the deployment
// the current key names, or else the last successful one, or else nothing.
func (e *Engine) loadCurrent(ctx context.Context) (*set, error) {
	var d store.Deployment
	b, err := e.cfg.Store.GetValue(ctx, currentKey)
	switch {
	case err == nil:
		if d, err = e.cfg.Store.GetDeployment(ctx, string(b)); err != nil {
			return nil, fmt.Errorf("load the current deployment %s: %w", b, err)
		}
	case errors.Is(err, store.ErrNotFound):
		d, err = e.cfg.Store.LastSuccessfulDeployment(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return emptySet(), nil
		}
		if err != nil {
			return nil, fmt.Errorf("load the last successful deployment: %w", err)
		}
	default:
		return nil, fmt.Errorf("load the current deployment: %w", err)
	}
	s, err := e.rebuildSet(d.ID, d.Manifest, d.Recipes, admitRecorded)
	if err != nil {
		return nil, fmt.Errorf("restore the current set: %w", err)
	}
	return s, nil
}

// resumeAtStart restores the current set and queues every unfinished
// deployment, the one that was running first. When that one had got past
// its plan, its own run hands the supervisor the set it ends in, so the
// current set is not started just to be stopped again.
func (e *Engine) resumeAtStart(ctx context.Context) error {
	e.removeStaging()
	cur, err := e.loadCurrent(ctx)
	if err != nil {
		return err
	}
	unfinished, err := e.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		return fmt.Errorf("list unfinished deployments: %w", err)
	}
	// The one in progress goes first; the queued ones keep their order.
	slices.SortStableFunc(unfinished, func(a, b store.Deployment) int {
		return cmp.Compare(rank(a.Status), rank(b.Status))
	})
	var jobs []*job
	for i := range unfinished {
		d := unfinished[i]
		j := &job{id: d.ID, origin: "resume", stored: &d}
		if d.Status == store.DeploymentInProgress {
			steps, err := e.cfg.Store.Steps(ctx, d.ID)
			if err != nil {
				return fmt.Errorf("resume deployment %s: %w", d.ID, err)
			}
			j.steps = stepsOf(steps)
		}
		e.log.Info("resuming deployment", "deployment", j.id, "status", d.Status)
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 || untouched(jobs[0]) {
		if err := e.restore(ctx, cur); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.current = cur
	e.queue = jobs // Submit and Rollback wait for Started: nothing else is queued yet
	e.mu.Unlock()
	return nil
}

func rank(s store.DeploymentStatus) int {
	if s == store.DeploymentInProgress {
		return 0
	}
	return 1
}

// untouched reports whether a job found at start had not got past its
// plan: nothing running was changed for it.
func untouched(j *job) bool {
	from, _ := resumePoint(j.steps, false)
	return from == resumeFresh
}

// restore hands the current set to the supervisor at start: version
// folders placed again if one went missing, work folders present.
func (e *Engine) restore(ctx context.Context, cur *set) error {
	if len(cur.comps) == 0 {
		return nil
	}
	if err := e.cfg.Fetcher.Fetch(ctx, cur.recipeList(), nil); err != nil {
		e.log.Error("restore: fetch the current set's artifacts", "deployment", cur.id, "err", err)
	}
	if err := prepareWorkDirs(cur, e.cfg.DefaultRunAs); err != nil {
		e.log.Error("restore: prepare work folders", "deployment", cur.id, "err", err)
	}
	if err := e.cfg.Supervisor.Apply(ctx, cur.components()); err != nil {
		return fmt.Errorf("restore the current set %s: %w", cur.id, err)
	}
	e.log.Info("current set restored", "deployment", cur.id, "components", cur.describe())
	return nil
}

// removeStaging removes the staging folders a crash left in the data folder.
func (e *Engine) removeStaging() {
	if e.cfg.StagingDir == "" {
		return
	}
	left, _ := filepath.Glob(filepath.Join(e.cfg.StagingDir, stagingPrefix+"*"))
	for _, d := range left {
		if err := os.RemoveAll(d); err != nil {
			e.log.Warn("remove a staging folder left by a crash", "dir", d, "err", err)
		}
	}
}
