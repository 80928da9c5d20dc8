package comms

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// engineDouble is a TEST DOUBLE for the deployment engine's three calls
// that comms makes (Submit, Get, Cancel). A real *deploy.Engine needs a
// supervisor, a fetcher and a repository; the agent's end-to-end tests run
// the real one. The double keeps deployments in memory, runs one at a time
// in submission order in its own goroutine, and publishes on the bus the
// events the engine publishes: "validate" done at Submit, then IN_PROGRESS
// (no step), each step "started" and "done" (or "failed"), and the final
// status (no step) with the error as detail.
//
// What a deployment does is read from its manifest text:
//
//	invalid  Submit refuses it with a *deploy.ValidationError
//	fail     the start step fails: FAILED, COMPONENT_FAILED, rolled back
//	hold     it waits in the start step until release(id) or a cancel
//
// Anything else succeeds. It records every Submit and Cancel call.
type engineDouble struct {
	bus *events.Bus

	mu        sync.Mutex
	deps      map[string]*deploy.Deployment
	manifests map[string]string
	queue     []string
	gates     map[string]chan struct{} // closed by release
	held      map[string]chan struct{} // closed when the deployment reaches its hold
	cancels   map[string]chan struct{} // closed by Cancel of a running deployment
	submits   []string
	canceled  []string
	wake      chan struct{}
}

func newEngineDouble(t *testing.T, bus *events.Bus) *engineDouble {
	e := &engineDouble{bus: bus, deps: map[string]*deploy.Deployment{}, manifests: map[string]string{},
		gates: map[string]chan struct{}{}, held: map[string]chan struct{}{}, cancels: map[string]chan struct{}{},
		wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return e
}

func (e *engineDouble) Submit(ctx context.Context, req deploy.Request) (deploy.Accepted, error) {
	manifest := string(req.Manifest)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.submits = append(e.submits, req.ID)
	if req.ID == "" || req.Origin != "mqtt" || req.ManifestName != "job "+req.ID {
		return deploy.Accepted{}, fmt.Errorf("double: unexpected request %+v", req)
	}
	if d, ok := e.deps[req.ID]; ok {
		if e.manifests[req.ID] != manifest {
			return deploy.Accepted{}, fmt.Errorf("deployment %s exists with another manifest: %w", req.ID, deploy.ErrConflict)
		}
		return deploy.Accepted{ID: req.ID, Existing: true, Status: d.Status}, nil
	}
	if strings.Contains(manifest, "invalid") {
		return deploy.Accepted{}, &deploy.ValidationError{Problems: []deploy.Problem{
			{Code: deploy.CodeValidation, Message: "job " + req.ID + ": components[0].version: \"1.x\" is not a version"}}}
	}
	now := time.Now()
	e.deps[req.ID] = &deploy.Deployment{ID: req.ID, Status: deploy.StatusQueued, CreatedAt: now, UpdatedAt: now}
	e.manifests[req.ID] = manifest
	e.queue = append(e.queue, req.ID)
	e.stepLocked(req.ID, deploy.StepValidate, deploy.StepDone, "")
	signal(e.wake)
	return deploy.Accepted{ID: req.ID, Status: deploy.StatusQueued}, nil
}

func (e *engineDouble) Get(ctx context.Context, id string) (deploy.Deployment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.deps[id]
	if !ok {
		return deploy.Deployment{}, fmt.Errorf("no deployment %s: %w", id, deploy.ErrNotFound)
	}
	out := *d
	out.Steps = slices.Clone(d.Steps)
	return out, nil
}

func (e *engineDouble) Cancel(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.canceled = append(e.canceled, id)
	d, ok := e.deps[id]
	switch {
	case !ok:
		return fmt.Errorf("no deployment %s: %w", id, deploy.ErrNotFound)
	case d.Status.Finished():
		return fmt.Errorf("deployment %s is already %s: %w", id, d.Status, deploy.ErrConflict)
	case d.Status == deploy.StatusQueued:
		e.queue = slices.DeleteFunc(e.queue, func(q string) bool { return q == id })
		e.endLocked(id, deploy.StatusCanceled, deploy.CodeCanceled, "canceled by request while queued", false)
	default:
		if ch := chanLocked(e.cancels, id); !closed(ch) {
			close(ch)
		}
	}
	return nil
}

// chanLocked returns the channel of id in m, making it on first use: a
// test may wait for a deployment before it is submitted.
func chanLocked(m map[string]chan struct{}, id string) chan struct{} {
	ch, ok := m[id]
	if !ok {
		ch = make(chan struct{})
		m[id] = ch
	}
	return ch
}

// release lets a held deployment go on.
func (e *engineDouble) release(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(chanLocked(e.gates, id))
}

// awaitHeld waits until deployment id waits at its hold.
func (e *engineDouble) awaitHeld(t *testing.T, id string) {
	t.Helper()
	e.mu.Lock()
	ch := chanLocked(e.held, id)
	e.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("deployment %s did not reach its hold within %s", id, waitTimeout)
	}
}

// submitted counts the Submit calls for id.
func (e *engineDouble) submitted(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.submits {
		if s == id {
			n++
		}
	}
	return n
}

func (e *engineDouble) run(ctx context.Context) {
	for {
		e.mu.Lock()
		var id string
		if len(e.queue) > 0 {
			id, e.queue = e.queue[0], e.queue[1:]
		}
		e.mu.Unlock()
		if id == "" {
			select {
			case <-e.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		e.deploy(ctx, id)
	}
}

// deploy runs one deployment through its steps.
func (e *engineDouble) deploy(ctx context.Context, id string) {
	e.mu.Lock()
	manifest := e.manifests[id]
	gate, held, canceled := chanLocked(e.gates, id), chanLocked(e.held, id), chanLocked(e.cancels, id)
	e.deps[id].Status = deploy.StatusInProgress
	e.publishLocked(id, "", string(deploy.StatusInProgress), "")
	e.stepLocked(id, deploy.StepFetch, deploy.StepStarted, "")
	e.stepLocked(id, deploy.StepFetch, deploy.StepDone, "1 artifact verified")
	e.stepLocked(id, deploy.StepStart, deploy.StepStarted, "")
	e.mu.Unlock()
	if strings.Contains(manifest, "hold") {
		close(held)
		select {
		case <-gate:
		case <-canceled:
			e.mu.Lock()
			e.stepLocked(id, deploy.StepRollback, deploy.StepDone, "previous set restored")
			e.endLocked(id, deploy.StatusCanceled, deploy.CodeCanceled, "canceled by request", true)
			e.mu.Unlock()
			return
		case <-ctx.Done():
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if strings.Contains(manifest, "fail") {
		e.stepLocked(id, deploy.StepStart, deploy.StepFailed, "hello: exited with status 1")
		e.stepLocked(id, deploy.StepRollback, deploy.StepDone, "previous set restored")
		e.endLocked(id, deploy.StatusFailed, deploy.CodeComponentFailed,
			"component hello failed: exited with status 1; stderr tail: boom: config missing", true)
		return
	}
	e.stepLocked(id, deploy.StepStart, deploy.StepDone, "")
	e.stepLocked(id, deploy.StepCommit, deploy.StepDone, "")
	e.endLocked(id, deploy.StatusSucceeded, "", "", false)
}

func (e *engineDouble) stepLocked(id string, name deploy.StepName, status deploy.StepStatus, detail string) {
	d := e.deps[id]
	d.Steps = append(d.Steps, deploy.Step{Seq: int64(len(d.Steps) + 1), Name: name, Status: status, Detail: detail, At: time.Now()})
	e.publishLocked(id, string(name), string(status), detail)
}

func (e *engineDouble) endLocked(id string, st deploy.Status, code deploy.Code, why string, rolledBack bool) {
	d := e.deps[id]
	d.Status, d.ErrorCode, d.Error, d.RolledBack, d.FinishedAt = st, code, why, rolledBack, time.Now()
	e.publishLocked(id, "", string(st), why)
}

// publishLocked publishes what the engine publishes (its publish method).
func (e *engineDouble) publishLocked(id, step, status, detail string) {
	ev := events.Event{Kind: events.KindDeployment, Deployment: id, Step: step, Reason: status,
		Detail: map[string]string{"status": status}}
	if detail != "" {
		ev.Detail["detail"] = detail
	}
	e.bus.Publish(ev)
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
