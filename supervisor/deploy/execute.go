package deploy

import (
	"context"
	"errors"
	"fmt"
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
	cfg := e.coreConfig(j)
	c := newCore(cfg)
	ev := event{kind: eventBegin, failure: broken}
	if j.steps != nil {
		ev.kind, ev.steps = eventResume, j.steps
		from, _ := resumePoint(j.steps, cfg.keep)
		e.log.Info("deployment resumed", "deployment", j.id, "from", from)
	}
	told := false
	for !c.over() {
		if cause, ok := context.Cause(j.ctx).(*cancelCause); ok && !told {
			c.Step(cause.event)
			told = true
		}
		var f *failure
		effects := c.Step(ev)
		if len(effects) == 0 { // a core that neither acts nor ends would spin
			return fmt.Errorf("deployment %s: no effect for event %d", j.id, ev.kind)
		}
		for _, ef := range effects {
			e.log.Debug("deployment effect", "deployment", j.id, "kind", ef.kind, "step", ef.step, "status", ef.stepStatus)
			if f, err = e.perform(ctx, j, ef); err != nil {
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
// the core, an error only when the store failed or ctx ended.
func (e *Engine) perform(ctx context.Context, j *job, ef effect) (*failure, error) {
	switch ef.kind {
	case effectStatus:
		return nil, e.setStatus(ctx, j, ef.status)
	case effectStep:
		return nil, e.step(ctx, j, ef.step, ef.stepStatus, e.stepDetail(j, ef))
	case effectFetch:
		return e.fetch(ctx, j)
	case effectPlan:
		return nil, e.recordPlan(ctx, j)
	case effectApply:
		return e.applySet(ctx, j, ef)
	case effectWait:
		return e.waitSet(ctx, j, ef)
	case effectSettle:
		return e.settleKept(ctx, j, ef.failure)
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
		waitPrev:  j.prev.healthTimeout().Duration,
	}
}

// startDeadline bounds the start step: health_timeout, plus the longest
// install, which runs inside it.
func startDeadline(j *job) time.Duration {
	return j.set.healthTimeout().Duration + installAllowance(j.prev, j.set)
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
		return fmt.Sprintf("%d artifacts of %d components", n, len(j.set.recipes))
	case ef.step == StepStop:
		return stopDetail(j.prev, j.set)
	case ef.step == StepStart:
		return fmt.Sprintf("waiting up to %s for %d components to be RUNNING and healthy", startDeadline(j), len(j.set.comps))
	}
	return ""
}

// settleKept, under failure_policy = "keep", lets the components that can
// still start finish starting (within health_timeout), so that the
// deployment ends with what succeeded running, and says in the failure
// which components failed and which could not start.
func (e *Engine) settleKept(ctx context.Context, j *job, f *failure) (*failure, error) {
	if j.set.graph == nil {
		return f, nil
	}
	var failed, blocked []string
	for {
		var rest []string
		failed, blocked, rest = e.triage(j.set)
		err := e.waitReady(j.ctx, rest, j.set.healthTimeout().Duration)
		if err == nil || !errors.Is(err, supervisor.ErrComponentFailed) {
			if ctx.Err() != nil {
				return nil, errAbandoned
			}
			if err != nil {
				f = &failure{code: f.code, err: fmt.Errorf("%w; and %w", f.err, err)}
			}
			break
		}
	}
	msg := "failed: " + listOrNone(failed)
	if len(blocked) > 0 {
		msg += "; not started (a hard dependency failed): " + strings.Join(blocked, ", ")
	}
	return &failure{code: f.code, err: fmt.Errorf("%s; first: %w", msg, f.err)}, nil
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
			for _, d := range s.graph.HardDependents(n) {
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

// load builds a recorded job's sets: its own and the one before it. A
// set that can no longer be built is returned as the failure; the job
// then runs with an empty set, to be finished or rolled back.
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
func (e *Engine) fetch(ctx context.Context, j *job) (*failure, error) {
	err := e.cfg.Fetcher.Fetch(j.ctx, j.set.recipeList(), func(p ota.Progress) {
		e.setWaiting(j, fmt.Sprintf("downloading %s (%d of %d bytes)", p.URL, p.BytesComplete, p.Size))
	})
	switch {
	case err == nil:
		return nil, nil
	case ctx.Err() != nil:
		return nil, errAbandoned
	}
	code := CodeInternal
	if reason, ok := ota.ReasonOf(err); ok {
		code = Code(reason)
	}
	return &failure{code: code, err: fmt.Errorf("fetch: %w", err)}, nil
}

// recordPlan checkpoints the plan and the set before the deployment in one
// transaction: from here on the deployment finishes or rolls back.
func (e *Engine) recordPlan(ctx context.Context, j *job) error {
	plan := computePlan(j.prev.comps, j.set.comps, e.states())
	detail, err := encodePlan(plan)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	prev, err := encodePrevious(j.prev)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	now := e.clock.Now()
	err = e.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.AppendStep(ctx, j.id, store.Step{Name: string(StepPlan), Status: store.StepDone, Detail: detail, At: now}); err != nil {
			return err
		}
		return tx.UpdateDeploymentStatus(ctx, j.id, store.DeploymentUpdate{Status: store.DeploymentInProgress, At: now, Previous: prev})
	})
	if err != nil {
		return e.storeErr(ctx, fmt.Errorf("checkpoint the plan of %s: %w", j.id, err))
	}
	e.progress(j, StepPlan, StepDone, summarize(plan), now)
	return nil
}

// applySet hands the new set (its work folders made first) or the
// previous one to the supervisor, within the stop deadline.
func (e *Engine) applySet(ctx context.Context, j *job, ef effect) (*failure, error) {
	s, what := j.set, "stop: "
	if ef.target == targetPrevious {
		s, what = j.prev, ""
	} else if err := prepareWorkDirs(s, e.cfg.DefaultRunAs); err != nil {
		return &failure{code: CodeInstallFailed, err: err}, nil
	}
	err := e.apply(ctx, s, ef.within)
	switch {
	case err == nil:
		return nil, nil
	case ctx.Err() != nil:
		return nil, errAbandoned
	case errors.Is(err, errStopTimeout):
		return &failure{code: CodeStopTimeout, err: fmt.Errorf("%s%w", what, err)}, nil
	}
	return &failure{code: CodeInternal, err: fmt.Errorf("%s%w", what, err)}, nil
}

// waitSet waits for a set to run. The new set's wait ends with the job (a
// cancel interrupts it); a rollback's does not.
func (e *Engine) waitSet(ctx context.Context, j *job, ef effect) (*failure, error) {
	s, wctx := j.set, j.ctx
	if ef.target == targetPrevious {
		s, wctx = j.prev, ctx
	}
	err := e.waitStarted(wctx, s.names(), ef.within)
	switch {
	case err == nil:
		return nil, nil
	case ctx.Err() != nil:
		return nil, errAbandoned
	case errors.Is(err, errHealthTimeout):
		return &failure{code: CodeHealthTimeout, err: fmt.Errorf("not RUNNING and healthy within health_timeout %s: %w",
			s.healthTimeout().Duration, err)}, nil
	case !errors.Is(err, supervisor.ErrComponentFailed):
		return &failure{code: CodeInternal, err: err}, nil
	case e.installFailed(s.names()):
		return &failure{code: CodeInstallFailed, err: err}, nil
	}
	return &failure{code: CodeComponentFailed, err: err}, nil
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

// finish records a deployment's end in one transaction: its last
// checkpoint (commit or rollback done), for a commit the new set as
// current, and the final status. Then old versions are let go after a
// commit.
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
		return e.storeErr(ctx, fmt.Errorf("record the end of %s: %w", j.id, err))
	}
	if step == StepCommit {
		e.setCurrent(j.set)
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

// apply hands s to the supervisor, within d (the stop step's deadline).
func (e *Engine) apply(ctx context.Context, s *set, d time.Duration) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := e.clock.AfterFunc(d, func() { cancel(errStopTimeout) })
	defer t.Stop()
	err := e.cfg.Supervisor.Apply(actx, s.components())
	if err != nil && context.Cause(actx) == errStopTimeout {
		return fmt.Errorf("not done within %s: %w", d, errStopTimeout)
	}
	return err
}

// waitReady waits for names to be ready within d.
func (e *Engine) waitReady(ctx context.Context, names []string, d time.Duration) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := e.clock.AfterFunc(d, func() { cancel(errHealthTimeout) })
	defer t.Stop()
	err := e.cfg.Supervisor.WaitReady(wctx, names)
	if err != nil && context.Cause(wctx) == errHealthTimeout {
		return fmt.Errorf("%w: %w", errHealthTimeout, err)
	}
	return err
}

// waitStarted waits, within d, until names are ready and stay ready with
// the same processes for the stable period: a process that starts and
// exits at once is RUNNING for an instant, and that is not a success.
func (e *Engine) waitStarted(ctx context.Context, names []string, d time.Duration) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := e.clock.AfterFunc(d, func() { cancel(errHealthTimeout) })
	defer t.Stop()
	timeout := func(err error) error {
		if context.Cause(wctx) == errHealthTimeout {
			return fmt.Errorf("%w: %w", errHealthTimeout, err)
		}
		return err
	}
	for {
		if err := e.cfg.Supervisor.WaitReady(wctx, names); err != nil {
			return timeout(err)
		}
		if e.stable <= 0 {
			return nil
		}
		before := e.runs(names)
		elapsed := make(chan struct{})
		st := e.clock.AfterFunc(e.stable, func() { close(elapsed) })
		select {
		case <-elapsed:
		case <-wctx.Done():
			st.Stop()
			return timeout(fmt.Errorf("waiting for %v to stay up for %s: %w", names, e.stable, wctx.Err()))
		}
		after := e.runs(names)
		if stayedUp(before, after) {
			return nil
		}
		e.log.Debug("a component restarted or left RUNNING while settling; waiting again", "ready", before, "now", after)
	}
}

// run is one component's process as far as stability goes: a new start
// changes its generation, even when the pid comes round again.
type run struct {
	pid   int
	gen   uint64
	ready bool
}

// runs returns the run of each of names.
func (e *Engine) runs(names []string) map[string]run {
	sts := e.states()
	out := make(map[string]run, len(names))
	for _, n := range names {
		st := sts[n]
		out[n] = run{pid: st.Pid, gen: st.Generation, ready: st.Ready() || st.State == supervisor.StateFinished}
	}
	return out
}

// stayedUp reports whether every component was ready at both looks, with
// the same process.
func stayedUp(before, after map[string]run) bool {
	for n, b := range before {
		if a := after[n]; !b.ready || a != b {
			return false
		}
	}
	return len(before) == len(after)
}

// cancelCause is why a job was canceled: the core's cancel or preempt
// event.
type cancelCause struct{ event }

func (c *cancelCause) Error() string {
	if c.kind == eventPreempt {
		return "preempted by deployment " + c.by
	}
	return c.reason
}

// step durably appends one checkpoint, then tells FaultHook.
func (e *Engine) step(ctx context.Context, j *job, name StepName, status StepStatus, detail string) error {
	at := e.clock.Now()
	st := store.Step{Name: string(name), Status: store.StepStatus(status), Detail: detail, At: at}
	if _, err := e.cfg.Store.AppendStep(ctx, j.id, st); err != nil {
		return e.storeErr(ctx, fmt.Errorf("checkpoint %s %s of %s: %w", name, status, j.id, err))
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
	e.hook(cp)
}

func (e *Engine) setWaiting(j *job, what string) {
	e.mu.Lock()
	j.waiting = what
	e.mu.Unlock()
}

func (e *Engine) setStatus(ctx context.Context, j *job, st Status) error {
	u := store.DeploymentUpdate{Status: store.DeploymentStatus(st), At: e.clock.Now()}
	if err := e.cfg.Store.UpdateDeploymentStatus(ctx, j.id, u); err != nil {
		return e.storeErr(ctx, fmt.Errorf("deployment %s: %w", j.id, err))
	}
	e.log.Info("deployment started", "deployment", j.id, "origin", j.origin)
	e.publish(j.id, "", string(st), "")
	e.broadcast()
	return nil
}

func (e *Engine) setCurrent(s *set) {
	e.mu.Lock()
	e.current = s
	e.mu.Unlock()
}

// storeErr is errAbandoned when the store failed because ctx ended.
func (e *Engine) storeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errAbandoned
	}
	return err
}

// stopDeadline bounds the stop step: every component of the set that
// runs stopped one after the other, each within its shutdown script's and
// its stop timeout, plus a margin.
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
		if reflect.DeepEqual(prev.comps[name], c) {
			continue
		}
		if in := c.Recipe.Lifecycle.Install; in != nil {
			t := in.Timeout.Duration
			if t == 0 {
				t = recipes.DefaultInstallTimeout
			}
			d = max(d, t)
		}
	}
	return d
}

// stopDetail says what the stop step stops and installs.
func stopDetail(prev, next *set) string {
	var stop, install []string
	for _, name := range prev.names() {
		if c, ok := next.comps[name]; !ok || !reflect.DeepEqual(c, prev.comps[name]) {
			stop = append(stop, name)
		}
	}
	for _, name := range next.names() {
		if c, ok := prev.comps[name]; !ok || !reflect.DeepEqual(c, next.comps[name]) {
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
