package deploy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"time"

	"github.com/keystone-edge/keystone/ota"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
)

var (
	errHealthTimeout = errors.New("health_timeout reached")
	errStopTimeout   = errors.New("stop deadline reached")
	errAbandoned     = errors.New("deploy: abandoned for agent shutdown") // resumed by the next Run
)

// stopMargin is added to the sum of the stop timeouts to bound the stop step.
const stopMargin = 30 * time.Second

// execute runs one job from where it stands to a final status: its core
// decides, this performs. It returns errAbandoned when ctx ended first (the
// checkpoints say where to go on), or another error when the store failed.
func (e *Engine) execute(ctx context.Context, j *job) error {
	broken, err := e.load(j)
	if err != nil {
		return err
	}
	c := newCore(e.coreConfig(j))
	ev := event{kind: eventBegin, failure: broken}
	if j.steps != nil {
		ev.kind, ev.steps = eventResume, j.steps
	}
	for !c.over() {
		if cause, ok := context.Cause(j.ctx).(*cancelCause); ok {
			c.Step(cause.event) // again each time: the core keeps the first
		}
		effects := c.Step(ev)
		if len(effects) == 0 { // a core that neither acts nor ends would spin
			return fmt.Errorf("deployment %s: no effect for event %d", j.id, ev.kind)
		}
		var f *failure
		for _, ef := range effects {
			e.log.Debug("deployment effect", "deployment", j.id, "kind", ef.kind, "step", ef.step, "status", ef.stepStatus)
			f, err = e.perform(ctx, j, ef)
			if ctx.Err() != nil {
				// Whatever ctx cut short did not fail: nothing is recorded.
				return errAbandoned
			}
			if err != nil {
				return err
			}
		}
		ev = event{kind: eventDone}
		if f != nil {
			ev = event{kind: eventFailed, failure: f}
		}
	}
	return nil
}

// perform carries out one effect; an operation's failure is returned for
// the core, an error only when the store failed.
func (e *Engine) perform(ctx context.Context, j *job, ef effect) (*failure, error) {
	switch ef.kind {
	case effectStatus:
		return nil, e.setStatus(ctx, j, ef.status)
	case effectStep:
		return nil, e.step(ctx, j, ef.step, ef.stepStatus, e.stepDetail(j, ef))
	case effectFetch:
		return e.fetch(j), nil
	case effectPlan:
		return nil, e.recordPlan(ctx, j)
	case effectApply:
		return e.applySet(ctx, j, ef), nil
	case effectWait:
		return e.waitSet(ctx, j, ef), nil
	case effectSettle:
		return e.settleKept(j, ef.failure), nil
	case effectCommit, effectKeep, effectRollback, effectFinish:
		return nil, e.finish(ctx, j, ef)
	}
	return nil, fmt.Errorf("deploy: unknown effect %d", ef.kind)
}

// coreConfig gives the core what it must know of j's two sets.
func (e *Engine) coreConfig(j *job) coreConfig {
	return coreConfig{
		keep:      j.set.policy() == recipes.FailureKeep,
		prevEmpty: len(j.prev.comps) == 0,
		stopNew:   stopDeadline(j.prev),
		stopPrev:  stopDeadline(j.set),
		waitNew:   startDeadline(j),
		waitPrev:  j.prev.healthTimeout(),
	}
}

// startDeadline bounds the start step: health_timeout, plus the longest
// install, which runs inside it.
func startDeadline(j *job) time.Duration {
	return j.set.healthTimeout() + installAllowance(j.prev, j.set)
}

// stepDetail is what a checkpoint records: the failure, or what a started
// step is about to do.
func (e *Engine) stepDetail(j *job, ef effect) string {
	switch {
	case ef.failure != nil:
		return failureDetail(ef.failure)
	case ef.stepStatus != StepStarted:
		return ""
	case ef.step == StepFetch:
		n := 0
		for _, r := range j.set.recipes {
			n += len(r.Artifacts)
		}
		return fmt.Sprintf("%s of %s", plural(n, "artifact"), plural(len(j.set.recipes), "component"))
	case ef.step == StepStop:
		return stopDetail(j.prev, j.set)
	case ef.step == StepStart:
		return fmt.Sprintf("waiting up to %s for %d components to be RUNNING and healthy", startDeadline(j), len(j.set.comps))
	}
	return ""
}

// load builds a recorded job's sets: its own and the one before it. A set
// that can no longer be built is returned as the failure, and the job runs
// with an empty set, to be finished or rolled back.
func (e *Engine) load(j *job) (*failure, error) {
	j.prev = e.currentSet()
	if j.set != nil {
		return nil, nil
	}
	var broken *failure
	s, err := e.rebuildSet(j.id, j.stored.Manifest, j.stored.Recipes, admitRecorded)
	if err != nil {
		broken, s = fail(CodeValidation, "%v", err), emptySet()
	}
	e.mu.Lock() // Get reads it while the job runs
	j.set = s
	e.mu.Unlock()
	if j.stored.Previous != nil {
		prev, err := e.decodePrevious(j.stored.Previous)
		if err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		j.prev = prev
	}
	return broken, nil
}

// fetch downloads, verifies and places every artifact of the new set.
func (e *Engine) fetch(j *job) *failure {
	err := e.cfg.Fetcher.Fetch(j.ctx, j.set.recipeList(), func(p ota.Progress) {
		e.mu.Lock()
		j.waiting = fmt.Sprintf("downloading %s (%d of %d bytes)", p.URL, p.BytesComplete, p.Size)
		e.mu.Unlock()
	})
	if err == nil {
		return nil
	}
	code := CodeInternal
	if reason, ok := ota.ReasonOf(err); ok {
		code = Code(reason)
	}
	return &failure{code: code, err: fmt.Errorf("fetch: %w", err)}
}

// recordPlan checkpoints the plan and the set before the deployment in one
// transaction: from here on the deployment finishes or rolls back.
func (e *Engine) recordPlan(ctx context.Context, j *job) error {
	plan := e.plan(j.prev, j.set)
	detail, err := json.Marshal(plan)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	prev, err := encodePrevious(j.prev)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	now := e.clock.Now()
	st := store.Step{Name: string(StepPlan), Status: store.StepDone, Detail: string(detail), At: now}
	err = e.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.AppendStep(ctx, j.id, st); err != nil {
			return err
		}
		return tx.UpdateDeploymentStatus(ctx, j.id, store.DeploymentUpdate{Status: store.DeploymentInProgress, At: now, Previous: prev})
	})
	if err != nil {
		return fmt.Errorf("checkpoint the plan of %s: %w", j.id, err)
	}
	e.progress(j, StepPlan, StepDone, summarize(plan), now)
	return nil
}

// applySet hands the new set (its work folders made first) or the
// previous one to the supervisor, within the stop deadline.
func (e *Engine) applySet(ctx context.Context, j *job, ef effect) *failure {
	s, what := j.set, "stop: "
	if ef.target == targetPrevious {
		s, what = j.prev, ""
	} else if err := prepareWorkDirs(s, e.cfg.DefaultRunAs); err != nil {
		return &failure{code: CodeInstallFailed, err: err}
	}
	err := e.bounded(ctx, ef.within, errStopTimeout, func(ctx context.Context) error {
		return e.cfg.Supervisor.Apply(ctx, s.components())
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errStopTimeout):
		return &failure{code: CodeStopTimeout, err: fmt.Errorf("%snot done within %s: %w", what, ef.within, errStopTimeout)}
	}
	return &failure{code: CodeInternal, err: fmt.Errorf("%s%w", what, err)}
}

// waitSet waits for a set to run and stay up. The new set's wait ends
// with the job (a cancel interrupts it); a rollback's does not.
func (e *Engine) waitSet(ctx context.Context, j *job, ef effect) *failure {
	s, wctx := j.set, j.ctx
	if ef.target == targetPrevious {
		s, wctx = j.prev, ctx
	}
	err := e.bounded(wctx, ef.within, errHealthTimeout, func(ctx context.Context) error {
		return e.waitStable(ctx, s.names())
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errHealthTimeout):
		return &failure{code: CodeHealthTimeout, err: fmt.Errorf("not RUNNING and healthy within health_timeout %s: %w",
			s.healthTimeout(), err)}
	case !errors.Is(err, supervisor.ErrComponentFailed):
		return &failure{code: CodeInternal, err: err}
	case e.installFailed(s.names()):
		return &failure{code: CodeInstallFailed, err: err}
	}
	return &failure{code: CodeComponentFailed, err: err}
}

// installFailed reports whether one of names failed in its install script.
func (e *Engine) installFailed(names []string) bool {
	sts := e.states()
	for _, n := range names {
		if st := sts[n]; st.Failed() && st.Failure == supervisor.FailureInstall {
			return true
		}
	}
	return false
}

// settleKept, under failure_policy = "keep", lets what can still start
// finish starting (within health_timeout), so that the deployment ends with
// what succeeded running; the failure says what failed and what could not
// start.
func (e *Engine) settleKept(j *job, f *failure) *failure {
	var failed, blocked, rest []string
	var timeout error
	for {
		failed, blocked, rest = e.triage(j.set)
		err := e.bounded(j.ctx, j.set.healthTimeout(), errHealthTimeout, func(ctx context.Context) error {
			return e.cfg.Supervisor.WaitReady(ctx, rest)
		})
		if errors.Is(err, supervisor.ErrComponentFailed) {
			continue // one more failed: sort again
		}
		if err != nil && !errors.Is(err, errHealthTimeout) {
			return f // interrupted (shutdown or cancel): the first failure stands
		}
		timeout = err
		break
	}
	// Each failed component is named once, with its own last error (the
	// first of them is what f says).
	var parts []string
	if len(failed) > 0 {
		parts = append(parts, "failed: "+strings.Join(failed, ", "))
	}
	if len(blocked) > 0 {
		parts = append(parts, "not started (a hard dependency failed): "+strings.Join(blocked, ", "))
	}
	if timeout != nil {
		parts = append(parts, timeout.Error())
	}
	if len(parts) == 0 {
		return f
	}
	return &failure{code: f.code, err: errors.New(strings.Join(parts, "; "))}
}

// triage sorts s's components into those that failed (named with their
// state and last error, for the record), those a failed hard dependency
// keeps from starting, and the rest.
func (e *Engine) triage(s *set) (failed, blocked, rest []string) {
	sts := e.states()
	down := map[string]bool{}
	for _, n := range s.names() {
		if st := sts[n]; st.Failed() {
			failed = append(failed, fmt.Sprintf("%s (%s: %s)", n, st.State, st.LastError))
			down[n] = true
			for _, d := range s.hardDependents[n] {
				down[d] = true
			}
		}
	}
	for _, n := range s.names() {
		switch st := sts[n]; {
		case st.Failed():
		case down[n]:
			blocked = append(blocked, n)
		default:
			rest = append(rest, n)
		}
	}
	return failed, blocked, rest
}

// finish records a deployment's end in one transaction: its last
// checkpoint, for a commit the new set as current, and the final status.
// After a commit, old versions are let go.
func (e *Engine) finish(ctx context.Context, j *job, ef effect) error {
	f, now := ef.failure, e.clock.Now()
	u := store.DeploymentUpdate{Status: store.DeploymentStatus(ef.status), RolledBack: ef.rolledBack, At: now}
	var step StepName
	detail, failed := "", ""
	if f != nil {
		u.Error, u.ErrorCode, failed = f.err.Error()+ef.note, string(f.code), failureDetail(f)
	}
	switch ef.kind {
	case effectCommit:
		step, detail = StepCommit, "current set: "+j.set.describe()
	case effectKeep:
		step, detail = StepCommit, "failure_policy keep: the new set stays; "+failed
	case effectRollback:
		step, detail = StepRollback, "restored "+j.prev.describe()+ef.note
	}
	err := e.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if step != "" {
			if _, err := tx.AppendStep(ctx, j.id, store.Step{Name: string(step), Status: store.StepDone, Detail: detail, At: now}); err != nil {
				return err
			}
		}
		if step == StepCommit {
			if err := tx.SetValue(ctx, currentKey, []byte(j.id)); err != nil {
				return err
			}
		}
		return tx.UpdateDeploymentStatus(ctx, j.id, u)
	})
	if err != nil {
		return fmt.Errorf("record the end of %s: %w", j.id, err)
	}
	if step == StepCommit {
		e.mu.Lock()
		e.current = j.set
		e.mu.Unlock()
	}
	e.log.Info("deployment finished", "deployment", j.id, "status", ef.status, "rolled_back", ef.rolledBack,
		"failure", failed, "note", ef.note, "components", j.set.describe())
	e.publish(j.id, "", string(ef.status), failed)
	if step == "" {
		e.broadcast()
		return nil
	}
	e.progress(j, step, StepDone, detail, now)
	if ef.kind == effectCommit {
		e.collect(ctx, j.set)
	}
	return nil
}

// bounded runs op with a context that ends, with cause, once d has passed
// on the engine's clock; op's error then wraps cause.
func (e *Engine) bounded(ctx context.Context, d time.Duration, cause error, op func(context.Context) error) error {
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := e.clock.AfterFunc(d, func() { cancel(cause) })
	defer t.Stop()
	err := op(bctx)
	if err != nil && context.Cause(bctx) == cause && !errors.Is(err, cause) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// waitStable waits until names are ready and stay ready with the same
// processes for the stable period: a process that starts and exits at once
// is RUNNING for an instant, and that is not a success.
func (e *Engine) waitStable(ctx context.Context, names []string) error {
	for {
		if err := e.cfg.Supervisor.WaitReady(ctx, names); err != nil || e.cfg.StableFor <= 0 {
			return err
		}
		before := e.runs(names)
		elapsed := make(chan struct{})
		t := e.clock.AfterFunc(e.cfg.StableFor, func() { close(elapsed) })
		select {
		case <-elapsed:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %v to stay up for %s: %w", names, e.cfg.StableFor, ctx.Err())
		}
		after := e.runs(names)
		if before != nil && maps.Equal(before, after) {
			return nil
		}
		e.log.Debug("a component restarted or left RUNNING while settling; waiting again", "ready", before, "now", after)
	}
}

// run is one component's process as far as stability goes: a new start
// changes its generation, even when the pid comes round again.
type run struct {
	pid int
	gen uint64
}

// runs returns the run of each of names, or nil when one is not ready.
func (e *Engine) runs(names []string) map[string]run {
	sts := e.states()
	out := make(map[string]run, len(names))
	for _, n := range names {
		st := sts[n]
		if !st.Ready() && st.State != supervisor.StateFinished {
			return nil
		}
		out[n] = run{pid: st.Pid, gen: st.Generation}
	}
	return out
}

// cancelCause is why a job was canceled: the core's cancel or preempt event.
type cancelCause struct{ event }

func (c *cancelCause) Error() string {
	if c.kind == eventPreempt {
		return "preempted by deployment " + c.by
	}
	return c.reason
}

// step durably appends one checkpoint.
func (e *Engine) step(ctx context.Context, j *job, name StepName, status StepStatus, detail string) error {
	at := e.clock.Now()
	st := store.Step{Name: string(name), Status: store.StepStatus(status), Detail: detail, At: at}
	if _, err := e.cfg.Store.AppendStep(ctx, j.id, st); err != nil {
		return fmt.Errorf("checkpoint %s %s of %s: %w", name, status, j.id, err)
	}
	e.progress(j, name, status, detail, at)
	return nil
}

// progress notes a durable checkpoint: the job's step, an event, waiters
// woken, FaultHook told.
func (e *Engine) progress(j *job, name StepName, status StepStatus, detail string, at time.Time) {
	cp := checkpoint(name, status)
	e.mu.Lock()
	j.step, j.since, j.waiting = cp, at, ""
	e.mu.Unlock()
	e.log.Debug("deployment step", "deployment", j.id, "step", name, "status", status, "detail", detail)
	e.publish(j.id, string(name), string(status), detail)
	e.broadcast()
	e.cfg.FaultHook(cp)
}

func (e *Engine) setStatus(ctx context.Context, j *job, st Status) error {
	u := store.DeploymentUpdate{Status: store.DeploymentStatus(st), At: e.clock.Now()}
	if err := e.cfg.Store.UpdateDeploymentStatus(ctx, j.id, u); err != nil {
		return fmt.Errorf("deployment %s: %w", j.id, err)
	}
	e.log.Info("deployment started", "deployment", j.id, "origin", j.origin)
	e.publish(j.id, "", string(st), "")
	e.broadcast()
	return nil
}

// stopDeadline bounds the stop step: the running set stopped one component
// after the other, each within its shutdown and stop timeouts, plus a margin.
func stopDeadline(running *set) time.Duration {
	d := stopMargin
	for _, c := range running.comps {
		if run := c.Recipe.Lifecycle.Run; run != nil {
			d += max(run.StopTimeout.Duration, recipes.DefaultStopTimeout)
		}
		if sh := c.Recipe.Lifecycle.Shutdown; sh != nil {
			d += max(sh.Timeout.Duration, recipes.DefaultShutdownTimeout)
		}
	}
	return d
}

// installAllowance is the longest install timeout among the components
// that are new or replaced: their install runs inside the start step.
func installAllowance(prev, next *set) time.Duration {
	var d time.Duration
	for name, c := range next.comps {
		if in := c.Recipe.Lifecycle.Install; in != nil && !reflect.DeepEqual(prev.comps[name], c) {
			d = max(d, cmp.Or(in.Timeout.Duration, recipes.DefaultInstallTimeout))
		}
	}
	return d
}

// stopDetail says what the stop step stops and installs.
func stopDetail(prev, next *set) string {
	var stop, install []string
	for _, name := range prev.names() {
		if !reflect.DeepEqual(next.comps[name], prev.comps[name]) {
			stop = append(stop, name)
		}
	}
	for _, name := range next.names() {
		if !reflect.DeepEqual(prev.comps[name], next.comps[name]) {
			install = append(install, name+"@"+next.comps[name].Version())
		}
	}
	return fmt.Sprintf("stop (dependents first): %s; install: %s", listOrNone(stop), listOrNone(install))
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// plural is "1 artifact", "2 artifacts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
