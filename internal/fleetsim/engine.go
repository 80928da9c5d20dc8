package fleetsim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Role is what a simulated device does with the deployments it is given.
type Role int

const (
	// Succeeding devices finish every deployment SUCCEEDED.
	Succeeding Role = iota
	// Failing devices fail every deployment in its start step
	// (COMPONENT_FAILED, rolled back).
	Failing
	// Silent devices take every deployment and never finish it: it stays
	// in its start step until it is canceled or the fleet stops.
	Silent
)

func (r Role) String() string {
	switch r {
	case Failing:
		return "failing"
	case Silent:
		return "silent"
	}
	return "succeeding"
}

// counters are the fleet's, shared by every engine.
type counters struct {
	received, succeeded, failed, canceled atomic.Int64
}

// engine stands in for one device's deployment engine: the three calls
// comms makes of it, with the events the real engine publishes on the
// device's bus ("validate" done at Submit, IN_PROGRESS, each step started
// and done or failed, the final status with the error as detail). It runs
// one deployment at a time, in submission order, each in a goroutine that
// lives only while there is work.
type engine struct {
	bus   *events.Bus
	role  Role
	slow  time.Duration
	count *counters
	life  context.Context // the fleet's; ends held deployments

	mu        sync.Mutex
	deps      map[string]*deploy.Deployment
	manifests map[string]string
	queue     []string
	running   bool
	cancels   map[string]chan struct{} // closed by Cancel of the running deployment
	comps     []message.ComponentStatus
	workers   sync.WaitGroup
}

func newEngine(life context.Context, bus *events.Bus, role Role, slow time.Duration, count *counters) *engine {
	return &engine{bus: bus, role: role, slow: slow, count: count, life: life,
		deps: map[string]*deploy.Deployment{}, manifests: map[string]string{}, cancels: map[string]chan struct{}{}}
}

// components is the device's component set now, for its statuses and state.
func (e *engine) components() []message.ComponentStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.comps)
}

// manifestComponents reads the components a deployment manifest names.
func manifestComponents(manifest string) ([]message.ComponentStatus, error) {
	var m struct {
		Components []struct {
			Name    string `toml:"name"`
			Version string `toml:"version"`
		} `toml:"components"`
	}
	if err := toml.Unmarshal([]byte(manifest), &m); err != nil {
		return nil, err
	}
	out := make([]message.ComponentStatus, 0, len(m.Components))
	for _, c := range m.Components {
		if c.Name == "" {
			return nil, fmt.Errorf("a component has no name")
		}
		out = append(out, message.ComponentStatus{Name: c.Name, Version: c.Version, State: "RUNNING"})
	}
	return out, nil
}

func (e *engine) Submit(_ context.Context, req deploy.Request) (deploy.Accepted, error) {
	manifest := string(req.Manifest)
	e.mu.Lock()
	defer e.mu.Unlock()
	if d, ok := e.deps[req.ID]; ok {
		if e.manifests[req.ID] != manifest {
			return deploy.Accepted{}, fmt.Errorf("deployment %s exists with another manifest: %w", req.ID, deploy.ErrConflict)
		}
		return deploy.Accepted{ID: req.ID, Existing: true, Status: d.Status}, nil
	}
	if _, err := manifestComponents(manifest); err != nil {
		return deploy.Accepted{}, &deploy.ValidationError{Problems: []deploy.Problem{
			{Code: deploy.CodeValidation, Message: req.ManifestName + ": " + err.Error()}}}
	}
	e.count.received.Add(1)
	now := time.Now()
	e.deps[req.ID] = &deploy.Deployment{ID: req.ID, Status: deploy.StatusQueued, CreatedAt: now, UpdatedAt: now}
	e.manifests[req.ID] = manifest
	e.queue = append(e.queue, req.ID)
	e.stepLocked(req.ID, deploy.StepValidate, deploy.StepDone, "")
	if !e.running {
		e.running = true
		e.workers.Go(e.run)
	}
	return deploy.Accepted{ID: req.ID, Status: deploy.StatusQueued}, nil
}

func (e *engine) Get(_ context.Context, id string) (deploy.Deployment, error) {
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

func (e *engine) Cancel(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
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
		if ch, ok := e.cancels[id]; ok {
			delete(e.cancels, id)
			close(ch)
		}
	}
	return nil
}

// wait waits for the engine's deployment goroutine to end (after the
// fleet's life ended).
func (e *engine) wait() { e.workers.Wait() }

// run runs the queued deployments one after another and ends when none is
// left.
func (e *engine) run() {
	for {
		e.mu.Lock()
		if len(e.queue) == 0 || e.life.Err() != nil {
			e.running = false
			e.mu.Unlock()
			return
		}
		id := e.queue[0]
		e.queue = e.queue[1:]
		canceled := make(chan struct{})
		e.cancels[id] = canceled
		d := e.deps[id]
		d.Status, d.UpdatedAt = deploy.StatusInProgress, time.Now()
		e.publishLocked(id, "", string(deploy.StatusInProgress), "")
		e.stepLocked(id, deploy.StepFetch, deploy.StepStarted, "")
		e.stepLocked(id, deploy.StepFetch, deploy.StepDone, "1 artifact verified")
		e.stepLocked(id, deploy.StepStart, deploy.StepStarted, "")
		e.mu.Unlock()
		e.deploy(id, canceled)
	}
}

// deploy takes a running deployment from its start step to its end, after
// the configured duration; a silent device's never ends on its own.
func (e *engine) deploy(id string, canceled chan struct{}) {
	var done <-chan time.Time
	if e.role != Silent {
		timer := time.NewTimer(e.slow)
		defer timer.Stop()
		done = timer.C
	}
	select {
	case <-done:
	case <-canceled:
		e.mu.Lock()
		defer e.mu.Unlock()
		e.stepLocked(id, deploy.StepRollback, deploy.StepDone, "previous set restored")
		e.endLocked(id, deploy.StatusCanceled, deploy.CodeCanceled, "canceled by request", true)
		return
	case <-e.life.Done():
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.cancels, id)
	if e.role == Failing {
		e.stepLocked(id, deploy.StepStart, deploy.StepFailed, "simulated: exited with status 1")
		e.stepLocked(id, deploy.StepRollback, deploy.StepDone, "previous set restored")
		e.endLocked(id, deploy.StatusFailed, deploy.CodeComponentFailed,
			"simulated failure: a component exited with status 1", true)
		return
	}
	comps, _ := manifestComponents(e.manifests[id]) // checked at Submit
	e.stepLocked(id, deploy.StepStart, deploy.StepDone, "")
	e.stepLocked(id, deploy.StepCommit, deploy.StepDone, "")
	old := e.comps
	e.comps = comps
	for _, c := range comps {
		from := "STOPPED"
		if i := slices.IndexFunc(old, func(o message.ComponentStatus) bool { return o.Name == c.Name }); i >= 0 {
			from = old[i].State
		}
		e.bus.Publish(events.Event{Kind: events.KindTransition, Component: c.Name, From: from, To: "RUNNING",
			Reason: "started", Deployment: id})
	}
	e.endLocked(id, deploy.StatusSucceeded, "", "", false)
}

func (e *engine) stepLocked(id string, name deploy.StepName, status deploy.StepStatus, detail string) {
	d := e.deps[id]
	d.Steps = append(d.Steps, deploy.Step{Seq: int64(len(d.Steps) + 1), Name: name, Status: status, Detail: detail, At: time.Now()})
	e.publishLocked(id, string(name), string(status), detail)
}

func (e *engine) endLocked(id string, st deploy.Status, code deploy.Code, why string, rolledBack bool) {
	d := e.deps[id]
	now := time.Now()
	d.Status, d.ErrorCode, d.Error, d.RolledBack, d.FinishedAt, d.UpdatedAt = st, code, why, rolledBack, now, now
	switch st {
	case deploy.StatusSucceeded:
		e.count.succeeded.Add(1)
	case deploy.StatusFailed:
		e.count.failed.Add(1)
	case deploy.StatusCanceled:
		e.count.canceled.Add(1)
	}
	e.publishLocked(id, "", string(st), why)
}

// publishLocked publishes a deployment event as the engine does.
func (e *engine) publishLocked(id, step, status, detail string) {
	ev := events.Event{Kind: events.KindDeployment, Deployment: id, Step: step, Reason: status,
		Detail: map[string]string{"status": status}}
	if detail != "" {
		ev.Detail["detail"] = detail
	}
	e.bus.Publish(ev)
}
