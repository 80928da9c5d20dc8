package deploy

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Config wires an Engine.
type Config struct {
	Store      Store      // records deployments and their checkpoints; required
	Supervisor Supervisor // runs the components; required
	Fetcher    Fetcher    // downloads, verifies and places artifacts; required
	// Repository resolves components a manifest names without a recipe;
	// nil refuses them.
	Repository Repository
	// Keyring holds the keys trusted to sign recipes (trust.keys); nil
	// trusts none.
	Keyring *sign.Keyring
	// AllowUnsigned runs local recipes without a trusted signature
	// (trust.allow_unsigned, development only).
	AllowUnsigned bool
	AllowRoot     bool   // lets recipes run as root (security.allow_root)
	DefaultRunAs  string // default_run_as, for recipes without run_as; "" is the agent's user
	DeviceID      string // the value of ${device.id}
	// DeviceConfig is agent.toml's [components."<name>".config] by
	// component name, layered between recipe defaults and deployment
	// overrides.
	DeviceConfig map[string]map[string]any
	// WorkDir holds each component's work folder, WorkDir/<name>/, made
	// by the engine and never removed. Required.
	WorkDir string
	// ComponentsDir holds placed versions, <name>/<version>/, looked
	// through for old ones after a commit; "" leaves them.
	ComponentsDir string
	// StagingDir is where a request's files are staged while parsed, and
	// where crash leftovers are removed at start; "" means os.TempDir(),
	// with nothing removed.
	StagingDir string
	// KeepVersions is artifacts.keep_versions: how many versions of each
	// component stay on disk, the current one included; 0 means
	// DefaultKeepVersions.
	KeepVersions int
	Events       events.Publisher // deployment progress; nil means events.Discard
	// Clock gives time and the deadlines of the stop and start steps; nil
	// means supervisor.SystemClock.
	Clock supervisor.Clock
	// StableFor is how long the components of a deployment must stay
	// ready, with the same processes, before it commits: a process that
	// exits at once is RUNNING for an instant only. 0 means
	// DefaultStableFor; negative means no wait.
	StableFor time.Duration
	Logger    *slog.Logger // nil discards
	// FaultHook is called right after each checkpoint is durable, with
	// "<step>:<status>" such as "stop:started"; nil means none. Tests use
	// it to crash the agent at a chosen step.
	FaultHook func(checkpoint string)
}

// DefaultKeepVersions is how many versions of each component stay on
// disk when Config.KeepVersions is 0: the current one and the one a
// rollback goes back to.
const DefaultKeepVersions = 2

// DefaultStableFor is how long a deployment's components must stay up
// before it commits, when Config.StableFor is 0.
const DefaultStableFor = time.Second

// Engine runs deployments one at a time. Create it with New, start Run in
// a goroutine, then Submit; every method is safe for concurrent use.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	clock    supervisor.Clock
	events   events.Publisher
	versions map[string]map[string]*recipes.Recipe // recorded deployments' recipes, for collect; Run's goroutine only

	kick    chan struct{} // a job was queued
	started chan struct{} // closed once Run has restored and resumed

	mu      sync.Mutex
	queue   []*job
	running *job
	current *set
	ran     bool
	cancels map[string]string // cancels asked for before their job ran: id -> reason
	changed chan struct{}     // closed and replaced on every change of a deployment
}

// job is one deployment waiting or running.
type job struct {
	id     string
	origin string
	set    *set              // nil for a recorded job until it runs
	prev   *set              // the set before it
	stored *store.Deployment // the record, for a job found at start
	steps  []Step            // its checkpoints, for one found IN_PROGRESS

	// Guarded by Engine.mu while queued or running.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	step    string
	since   time.Time
	waiting string
}

// New checks cfg and returns an engine that is not yet running.
func New(cfg Config) (*Engine, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("deploy: Config.Store is required")
	case cfg.Supervisor == nil:
		return nil, errors.New("deploy: Config.Supervisor is required")
	case cfg.Fetcher == nil:
		return nil, errors.New("deploy: Config.Fetcher is required")
	case cfg.WorkDir == "":
		return nil, errors.New("deploy: Config.WorkDir is required")
	}
	if cfg.KeepVersions == 0 {
		cfg.KeepVersions = DefaultKeepVersions
	}
	if cfg.StableFor == 0 {
		cfg.StableFor = DefaultStableFor
	}
	if cfg.FaultHook == nil {
		cfg.FaultHook = func(string) {}
	}
	return &Engine{
		cfg:    cfg,
		log:    cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		clock:  cmp.Or(cfg.Clock, supervisor.Clock(supervisor.SystemClock{})),
		events: cmp.Or(cfg.Events, events.Discard),
		kick:   make(chan struct{}, 1), started: make(chan struct{}), current: emptySet(), cancels: map[string]string{},
		changed: make(chan struct{}), versions: map[string]map[string]*recipes.Recipe{},
	}, nil
}

// Run is the one goroutine that owns deployments. At start it restores the
// current set and resumes every unfinished deployment from its checkpoints;
// then it runs queued deployments, in order, until ctx ends. A deployment
// interrupted by ctx is resumed by the next Run. Run returns nil when ctx
// ends, or an error when the store fails (a deployment that cannot be
// checkpointed cannot go on). It may be called once.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.ran {
		e.mu.Unlock()
		return errors.New("deploy: Run called twice")
	}
	e.ran = true
	e.mu.Unlock()
	if err := e.resumeAtStart(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	close(e.started)
	for {
		j := e.next(ctx)
		if j == nil {
			select {
			case <-e.kick:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		err := e.execute(ctx, j)
		e.finished(j)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("deployment %s: %w", j.id, err)
		}
	}
}

// Started is closed once Run has handed the current set back to the
// supervisor and queued the unfinished deployments it found, so that
// Current is the committed set.
func (e *Engine) Started() <-chan struct{} { return e.started }

// Submit validates a deployment completely (manifest, recipes, signatures,
// dependency graph, rendering), records and queues it, and answers its plan
// against the current set now. Problems come back as a *ValidationError
// (errors.Is ErrInvalid) listing every one, with nothing queued or changed.
// A deployment id already recorded answers that deployment for the same
// manifest (it never runs twice), ErrConflict for another. Submit waits for
// Started: the current set is what a deployment is checked against. With
// req.Preempt the running and the queued deployments are canceled.
func (e *Engine) Submit(ctx context.Context, req Request) (Accepted, error) {
	m, err := e.parseManifest(ctx, req)
	if err != nil {
		return Accepted{}, err
	}
	id := m.Deployment.ID
	if id == "" {
		id = e.newID("d")
	} else if acc, ok, err := e.known(ctx, id, string(req.Manifest)); ok || err != nil {
		return acc, err
	}
	cur := e.currentSet()
	s, err := e.prepare(ctx, req, m, id, cur)
	if err != nil {
		return Accepted{}, err
	}
	if err := e.record(ctx, s); err != nil {
		if errors.Is(err, store.ErrExists) {
			acc, _, err := e.known(ctx, id, string(req.Manifest))
			return acc, err
		}
		return Accepted{}, err
	}
	origin := cmp.Or(req.Origin, "local")
	e.log.Info("deployment queued", "deployment", id, "origin", origin, "components", s.describe())
	e.enqueue(ctx, &job{id: id, origin: origin, set: s}, req.Preempt)
	return Accepted{ID: id, Plan: e.plan(cur, s)}, nil
}

// Plan validates a deployment like Submit and returns what it would change
// against the current set now. Nothing is recorded or changed. Like Submit
// it waits for Started.
func (e *Engine) Plan(ctx context.Context, req Request) ([]PlanItem, error) {
	m, err := e.parseManifest(ctx, req)
	if err != nil {
		return nil, err
	}
	cur := e.currentSet()
	s, err := e.prepare(ctx, req, m, cmp.Or(m.Deployment.ID, "plan"), cur)
	if err != nil {
		return nil, err
	}
	return e.plan(cur, s), nil
}

// Cancel stops deployment id: a queued one at once; a running one at its
// next safe point (between steps, or while it downloads or waits for
// components), rolling back. Cancel does not wait for that (Wait does). A
// finished deployment gives ErrConflict, an unknown id ErrNotFound.
func (e *Engine) Cancel(ctx context.Context, id string) error {
	const reason = "canceled by request"
	e.mu.Lock()
	if r := e.running; r != nil && r.id == id {
		r.cancel(&cancelCause{event{kind: eventCancel, reason: reason}})
		e.mu.Unlock()
		return nil
	}
	for i, q := range e.queue {
		if q.id == id {
			e.queue = slices.Delete(e.queue, i, i+1)
			e.mu.Unlock()
			return e.cancelQueued(ctx, q.id, reason+" while queued")
		}
	}
	d, err := e.cfg.Store.GetDeployment(ctx, id)
	if err == nil && !d.Status.Finished() {
		// Recorded but not yet picked up by Run: cancel it when it is.
		e.cancels[id] = reason
	}
	e.mu.Unlock()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(err, "no deployment %s", id)
	case err != nil:
		return fmt.Errorf("cancel deployment %s: %w", id, err)
	case d.Status.Finished():
		return conflict("deployment %s is already %s; only a queued or running deployment can be canceled", id, d.Status)
	}
	return nil
}

// Rollback queues a new deployment (with an id of its own) that applies
// again the last successful deployment before the current one. It is
// ErrNotFound when there is none. With dryRun it only answers the plan
// (Accepted.ID empty, RollbackTo set) and records nothing.
func (e *Engine) Rollback(ctx context.Context, dryRun bool) (Accepted, error) {
	if err := e.awaitStart(ctx); err != nil {
		return Accepted{}, err
	}
	cur := e.currentSet()
	if cur.id == "" {
		return Accepted{}, notFound(nil, "nothing to roll back: nothing is deployed")
	}
	list, err := e.cfg.Store.ListDeployments(ctx, 0)
	if err != nil {
		return Accepted{}, fmt.Errorf("rollback: list deployments: %w", err)
	}
	i := slices.IndexFunc(list, func(d store.Deployment) bool { return d.ID == cur.id })
	k := slices.IndexFunc(list[i+1:], func(d store.Deployment) bool { return d.Status == store.DeploymentSucceeded })
	if i < 0 || k < 0 {
		return Accepted{}, notFound(nil, "nothing to roll back to: no deployment succeeded before %s", cur.id)
	}
	target := list[i+1+k]
	m, err := recipes.ParseManifest("deployment "+target.ID, []byte(target.Manifest))
	if err != nil {
		return Accepted{}, fmt.Errorf("rollback to %s: manifest: %w", target.ID, err)
	}
	id := e.newID("rollback-to-" + target.ID)
	m.Deployment.ID = id
	text, err := m.Marshal()
	if err != nil {
		return Accepted{}, fmt.Errorf("rollback to %s: %w", target.ID, err)
	}
	s, err := e.rebuildSet(id, string(text), target.Recipes, admitNew)
	if err != nil {
		return Accepted{}, fmt.Errorf("rollback to %s: %w", target.ID, err)
	}
	if dryRun {
		return Accepted{RollbackTo: target.ID, Plan: e.plan(cur, s)}, nil
	}
	if err := e.record(ctx, s); err != nil {
		return Accepted{}, err
	}
	e.log.Info("rollback queued", "deployment", id, "to", target.ID)
	e.enqueue(ctx, &job{id: id, origin: "rollback", set: s}, false)
	return Accepted{ID: id, RollbackTo: target.ID, Plan: e.plan(cur, s)}, nil
}

// Get returns a deployment with every step, its plan, and, while it runs,
// what it waits for. An unknown id gives an error matching both
// ErrNotFound and store.ErrNotFound.
func (e *Engine) Get(ctx context.Context, id string) (Deployment, error) {
	d, err := e.cfg.Store.GetDeployment(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Deployment{}, notFound(err, "no deployment %s", id)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", id, err)
	}
	return e.view(ctx, d)
}

// List returns up to limit deployments, newest first, each with its steps;
// limit <= 0 means all.
func (e *Engine) List(ctx context.Context, limit int) ([]Deployment, error) {
	list, err := e.cfg.Store.ListDeployments(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	out := make([]Deployment, len(list))
	for i, d := range list {
		if out[i], err = e.view(ctx, d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Wait waits until deployment id is finished (SUCCEEDED, FAILED or
// CANCELED) and returns it, or returns ctx's error.
func (e *Engine) Wait(ctx context.Context, id string) (Deployment, error) {
	for {
		ch := e.changes()
		d, err := e.Get(ctx, id)
		if err != nil {
			return d, err
		}
		if d.Status.Finished() {
			return d, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return d, fmt.Errorf("wait for deployment %s: %w", id, ctx.Err())
		}
	}
}

// Installed is one component of the current set.
type Installed struct {
	Name    string
	Version string
	Kind    recipes.Kind
}

// CurrentSet is what the device is meant to run: the last committed
// deployment.
type CurrentSet struct {
	// DeploymentID is the committed deployment; "" before the first.
	DeploymentID string
	// Components are sorted by name.
	Components []Installed
}

// Current returns the current set.
func (e *Engine) Current() CurrentSet {
	s := e.currentSet()
	out := CurrentSet{DeploymentID: s.id}
	for _, n := range s.names() {
		r := s.comps[n].Recipe
		out.Components = append(out.Components, Installed{Name: n, Version: r.Metadata.Version, Kind: r.Metadata.Kind})
	}
	return out
}

// awaitStart waits until Run has restored the current set.
func (e *Engine) awaitStart(ctx context.Context) error {
	select {
	case <-e.started:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("deployment engine not started: %w", ctx.Err())
	}
}

func (e *Engine) currentSet() *set {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.current
}

// plan is what going from cur to s changes, with the components as the
// supervisor reports them now.
func (e *Engine) plan(cur, s *set) []PlanItem {
	return computePlan(cur.comps, s.comps, e.states())
}

// states returns the supervisor's view of each component.
func (e *Engine) states() map[string]supervisor.Status {
	out := map[string]supervisor.Status{}
	for _, st := range e.cfg.Supervisor.Snapshot() {
		out[st.Name] = st
	}
	return out
}

// enqueue adds j; with preempt the running job is canceled and the queued
// ones are dropped as superseded.
func (e *Engine) enqueue(ctx context.Context, j *job, preempt bool) {
	e.mu.Lock()
	var dropped []*job
	if preempt {
		if r := e.running; r != nil {
			r.cancel(&cancelCause{event{kind: eventPreempt, by: j.id}})
		}
		dropped, e.queue = e.queue, nil
	}
	e.queue = append(e.queue, j)
	e.mu.Unlock()
	for _, q := range dropped {
		if err := e.cancelQueued(ctx, q.id, "superseded by deployment "+j.id); err != nil {
			e.log.Error("cancel superseded deployment", "deployment", q.id, "err", err)
		}
	}
	e.broadcast()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// next takes the first queued job and makes it the running one.
func (e *Engine) next(ctx context.Context) *job {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 {
		return nil
	}
	j := e.queue[0]
	e.queue = e.queue[1:]
	j.ctx, j.cancel = context.WithCancelCause(ctx)
	if reason, ok := e.cancels[j.id]; ok {
		delete(e.cancels, j.id)
		j.cancel(&cancelCause{event{kind: eventCancel, reason: reason}})
	}
	e.running = j
	return j
}

func (e *Engine) finished(j *job) {
	e.mu.Lock()
	e.running = nil
	e.mu.Unlock()
	j.cancel(nil)
	e.broadcast()
}

// cancelQueued records a deployment that never ran as CANCELED.
func (e *Engine) cancelQueued(ctx context.Context, id, reason string) error {
	err := e.cfg.Store.UpdateDeploymentStatus(ctx, id, store.DeploymentUpdate{
		Status: store.DeploymentCanceled, Error: reason, ErrorCode: string(CodeCanceled), At: e.clock.Now(),
	})
	if err != nil {
		return fmt.Errorf("cancel deployment %s: %w", id, err)
	}
	e.log.Info("deployment canceled", "deployment", id, "reason", reason)
	e.publish(id, "", string(StatusCanceled), reason)
	e.broadcast()
	return nil
}

// known answers a deployment id already recorded: the same manifest is the
// same deployment; another manifest under the id is a conflict.
func (e *Engine) known(ctx context.Context, id, manifest string) (Accepted, bool, error) {
	d, err := e.cfg.Store.GetDeployment(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Accepted{}, false, nil
	case err != nil:
		return Accepted{}, false, fmt.Errorf("look up deployment %s: %w", id, err)
	case d.Manifest != manifest:
		return Accepted{}, false, conflict(
			"deployment id %s was already used for a different manifest (%s); give this one another id", id, d.Status)
	}
	return Accepted{ID: id, Existing: true, Status: Status(d.Status)}, true, nil
}

// record durably records a validated deployment as QUEUED.
func (e *Engine) record(ctx context.Context, s *set) error {
	now := e.clock.Now()
	err := e.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.CreateDeployment(ctx, store.Deployment{
			ID: s.id, Manifest: s.manifestText, Recipes: s.recipeText,
			Status: store.DeploymentQueued, CreatedAt: now, UpdatedAt: now,
		}); err != nil {
			return err
		}
		_, err := tx.AppendStep(ctx, s.id, store.Step{Name: string(StepValidate), Status: store.StepDone, Detail: s.describe(), At: now})
		return err
	})
	if err != nil {
		return fmt.Errorf("record deployment %s: %w", s.id, err)
	}
	e.publish(s.id, string(StepValidate), string(StepDone), s.describe())
	e.cfg.FaultHook(checkpoint(StepValidate, StepDone))
	return nil
}

// newID makes a deployment id: prefix, time, random suffix.
func (e *Engine) newID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := fmt.Sprintf("%s-%s-%s", prefix, e.clock.Now().UTC().Format("20060102T150405Z"), hex.EncodeToString(b[:]))
	if len(id) > 128 {
		id = id[len(id)-128:]
	}
	return id
}

// publish sends a deployment event.
func (e *Engine) publish(id, step, status, detail string) {
	ev := events.Event{At: e.clock.Now(), Kind: events.KindDeployment, Deployment: id, Step: step,
		Reason: status, Detail: map[string]string{"status": status}}
	if detail != "" {
		ev.Detail["detail"] = detail
	}
	e.events.Publish(ev)
}

// changes returns a channel closed at the next change of any deployment.
func (e *Engine) changes() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

func (e *Engine) broadcast() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}
