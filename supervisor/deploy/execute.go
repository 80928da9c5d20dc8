package deploy

import (
	"context"
	"encoding/json"
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

// execute runs one job from where it stands to a final status. It returns
// errAbandoned when ctx ended first (the checkpoints say where to go on),
// or another error when the store failed.
func (e *Engine) execute(ctx context.Context, j *job) error {
	if f, err := e.load(j); err != nil {
		return err
	} else if f != nil {
		return e.finishUntouched(ctx, j, f)
	}
	switch j.resume {
	case resumeRollback:
		return e.rollback(ctx, j, j.failed)
	case resumeKeep:
		if err := e.cfg.Supervisor.Apply(ctx, j.set.components()); err != nil && ctx.Err() != nil {
			return errAbandoned
		}
		return e.keep(ctx, j, j.failed)
	case resumeApply:
		e.log.Info("deployment resumed past its plan", "deployment", j.id)
	default:
		if err := e.setStatus(ctx, j, store.DeploymentInProgress, ""); err != nil {
			return err
		}
		f, err := e.fetch(ctx, j)
		if err != nil {
			return err
		}
		if f == nil {
			f = e.canceled(j)
		}
		if f != nil {
			return e.finishUntouched(ctx, j, f)
		}
		if err := e.recordPlan(ctx, j); err != nil {
			return err
		}
		if f := e.canceled(j); f != nil {
			return e.finishUntouched(ctx, j, f)
		}
	}
	f, err := e.stopAndStart(ctx, j)
	switch {
	case err != nil:
		return err
	case f == nil:
		return e.commit(ctx, j)
	case j.set.policy() == recipes.FailureKeep && f.code != CodeCanceled:
		f, err = e.settleKept(ctx, j, f)
		if err != nil {
			return err
		}
		return e.keep(ctx, j, f)
	}
	return e.rollback(ctx, j, f)
}

// settleKept, under failure_policy = "keep", lets the components that can
// still start finish starting (within health_timeout), so that the
// deployment ends with what succeeded running, and says in the failure
// which components failed and which could not start.
func (e *Engine) settleKept(ctx context.Context, j *job, f *failure) (*failure, error) {
	if j.set.graph == nil {
		return f, nil
	}
	var failed, blocked, rest []string
	for {
		sts := e.states()
		down := map[string]bool{}
		failed, blocked, rest = nil, nil, nil
		for _, n := range j.set.names() {
			if st := sts[n]; st.Failed() {
				failed = append(failed, fmt.Sprintf("%s (%s: %s)", n, st.State, st.LastError))
				down[n] = true
				for _, d := range j.set.graph.HardDependents(n) {
					down[d] = true
				}
			}
		}
		for _, n := range j.set.names() {
			switch st := sts[n]; {
			case st.Failed():
			case down[n]:
				blocked = append(blocked, n)
			default:
				rest = append(rest, n)
			}
		}
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

// load builds a recorded job's sets: its own and the one before it. A
// job whose set cannot be built before its plan fails untouched (the
// failure is returned); past its plan it goes back to the previous set.
func (e *Engine) load(j *job) (*failure, error) {
	if j.set == nil {
		s, err := e.rebuildSet(j.id, j.stored.Manifest, j.stored.Recipes)
		if err != nil {
			f := fail(CodeValidation, "%v", err)
			if j.resume == resumeFresh {
				return f, nil
			}
			s, j.resume, j.failed = emptySet(), resumeRollback, f
		}
		e.mu.Lock() // Get reads it while the job runs
		j.set = s
		e.mu.Unlock()
	}
	j.prev = e.currentSet()
	if j.stored != nil && j.stored.Previous != nil && j.resume != resumeFresh {
		prev, err := e.decodePrevious(j.stored.Previous)
		if err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		j.prev = prev
	}
	return nil, nil
}

// fetch downloads, verifies and places every artifact of the new set.
func (e *Engine) fetch(ctx context.Context, j *job) (*failure, error) {
	rs := j.set.recipeList()
	n := 0
	for _, r := range rs {
		n += len(r.Artifacts)
	}
	if err := e.step(ctx, j, StepFetch, store.StepStarted, fmt.Sprintf("%d artifacts of %d components", n, len(rs))); err != nil {
		return nil, err
	}
	err := e.cfg.Fetcher.Fetch(j.ctx, rs, func(p ota.Progress) {
		e.setWaiting(j, fmt.Sprintf("downloading %s (%d of %d bytes)", p.URL, p.BytesComplete, p.Size))
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, errAbandoned
		}
		f := e.canceled(j)
		if f == nil {
			code := CodeInternal
			if reason, ok := ota.ReasonOf(err); ok {
				code = string(reason)
			}
			f = &failure{code: code, err: fmt.Errorf("fetch: %w", err)}
		}
		return f, e.step(ctx, j, StepFetch, store.StepFailed, failureDetail(f))
	}
	return nil, e.step(ctx, j, StepFetch, store.StepDone, "")
}

// recordPlan checkpoints the plan and the set before the deployment in one
// transaction: from here on the deployment finishes or rolls back.
func (e *Engine) recordPlan(ctx context.Context, j *job) error {
	plan := computePlan(j.prev.comps, j.set.comps, e.states())
	detail, err := json.Marshal(plan)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	prev, err := encodePrevious(j.prev)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	now := e.clock.Now()
	err = e.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.AppendStep(ctx, j.id, store.Step{Name: StepPlan, Status: store.StepDone, Detail: string(detail), At: now}); err != nil {
			return err
		}
		return tx.UpdateDeploymentStatus(ctx, j.id, store.DeploymentUpdate{Status: store.DeploymentInProgress, At: now, Previous: prev})
	})
	if err != nil {
		return e.storeErr(ctx, fmt.Errorf("checkpoint the plan of %s: %w", j.id, err))
	}
	e.progress(j, StepPlan, store.StepDone, summarize(plan), now)
	return nil
}

// stopAndStart hands the new set to the supervisor (the stop step) and
// waits for it to run (the start step). A failure is returned, not
// recorded as final: the caller rolls back or keeps.
func (e *Engine) stopAndStart(ctx context.Context, j *job) (*failure, error) {
	if f := e.canceled(j); f != nil {
		return f, nil
	}
	if err := e.step(ctx, j, StepStop, store.StepStarted, stopDetail(j.prev, j.set)); err != nil {
		return nil, err
	}
	var f *failure
	if err := prepareWorkDirs(j.set, e.cfg.DefaultRunAs); err != nil {
		f = &failure{code: CodeInstallFailed, err: err}
	} else if err := e.apply(ctx, j.set, stopDeadline(j.prev)); err != nil {
		if ctx.Err() != nil {
			return nil, errAbandoned
		}
		f = &failure{code: CodeInternal, err: fmt.Errorf("stop: %w", err)}
		if errors.Is(err, errStopTimeout) {
			f.code = CodeStopTimeout
		}
	}
	if f != nil {
		return f, e.step(ctx, j, StepStop, store.StepFailed, failureDetail(f))
	}
	if err := e.step(ctx, j, StepStop, store.StepDone, ""); err != nil {
		return nil, err
	}
	if f := e.canceled(j); f != nil {
		return f, nil
	}
	timeout := j.set.healthTimeout().Duration
	wait := timeout + installAllowance(j.prev, j.set)
	names := j.set.names()
	if err := e.step(ctx, j, StepStart, store.StepStarted, fmt.Sprintf(
		"waiting up to %s for %d components to be RUNNING and healthy", wait, len(names))); err != nil {
		return nil, err
	}
	err := e.waitStarted(j.ctx, names, wait)
	if err == nil {
		return nil, e.step(ctx, j, StepStart, store.StepDone, "")
	}
	if ctx.Err() != nil {
		return nil, errAbandoned
	}
	f = e.classifyWait(j, names, timeout, err)
	return f, e.step(ctx, j, StepStart, store.StepFailed, failureDetail(f))
}

// classifyWait turns a failed wait into a failure with its code.
func (e *Engine) classifyWait(j *job, names []string, timeout time.Duration, err error) *failure {
	switch cause := context.Cause(j.ctx); {
	case errors.Is(err, errHealthTimeout):
		return &failure{code: CodeHealthTimeout, err: fmt.Errorf("not RUNNING and healthy within health_timeout %s: %w", timeout, err)}
	case isCancel(cause):
		return &failure{code: CodeCanceled, err: cause}
	case errors.Is(err, supervisor.ErrComponentFailed):
		code := CodeComponentFailed
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		for _, st := range e.cfg.Supervisor.Snapshot() {
			if want[st.Name] && st.Failed() && strings.HasPrefix(st.LastError, "install failed") {
				code = CodeInstallFailed
			}
		}
		return &failure{code: code, err: err}
	}
	return &failure{code: CodeInternal, err: err}
}

// commit records the new set as current, then lets go of versions no longer
// kept.
func (e *Engine) commit(ctx context.Context, j *job) error {
	if err := e.step(ctx, j, StepCommit, store.StepStarted, ""); err != nil {
		return err
	}
	now := e.clock.Now()
	detail := "current set: " + j.set.describe()
	err := e.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.AppendStep(ctx, j.id, store.Step{Name: StepCommit, Status: store.StepDone, Detail: detail, At: now}); err != nil {
			return err
		}
		if err := tx.SetValue(ctx, currentKey, []byte(j.id)); err != nil {
			return err
		}
		return tx.UpdateDeploymentStatus(ctx, j.id, store.DeploymentUpdate{Status: store.DeploymentSucceeded, At: now})
	})
	if err != nil {
		return e.storeErr(ctx, fmt.Errorf("commit %s: %w", j.id, err))
	}
	e.setCurrent(j.set)
	e.log.Info("deployment succeeded", "deployment", j.id, "components", j.set.describe())
	e.publish(j.id, "", store.DeploymentSucceeded.String(), "")
	e.progress(j, StepCommit, store.StepDone, detail, now)
	e.collect(ctx, j.set)
	return nil
}

// keep records a failure under failure_policy = "keep": the new set stays
// (what succeeded runs, what failed is reported) and becomes current.
func (e *Engine) keep(ctx context.Context, j *job, f *failure) error {
	now := e.clock.Now()
	detail := "failure_policy keep: the new set stays; " + failureDetail(f)
	err := e.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.AppendStep(ctx, j.id, store.Step{Name: StepCommit, Status: store.StepDone, Detail: detail, At: now}); err != nil {
			return err
		}
		if err := tx.SetValue(ctx, currentKey, []byte(j.id)); err != nil {
			return err
		}
		return tx.UpdateDeploymentStatus(ctx, j.id, store.DeploymentUpdate{
			Status: store.DeploymentFailed, Error: f.err.Error(), ErrorCode: f.code, At: now})
	})
	if err != nil {
		return e.storeErr(ctx, fmt.Errorf("record failure of %s: %w", j.id, err))
	}
	e.setCurrent(j.set)
	e.log.Warn("deployment failed; failure_policy keep leaves the new set", "deployment", j.id, "code", f.code, "err", f.err)
	e.publish(j.id, "", store.DeploymentFailed.String(), failureDetail(f))
	e.progress(j, StepCommit, store.StepDone, detail, now)
	return nil
}

// rollback restores the set before the deployment (versions and
// configuration) and records the deployment FAILED, or CANCELED, with
// rolled_back. Work folders are not touched.
func (e *Engine) rollback(ctx context.Context, j *job, f *failure) error {
	if err := e.step(ctx, j, StepRollback, store.StepStarted, failureDetail(f)); err != nil {
		return err
	}
	e.log.Warn("deployment failed; rolling back", "deployment", j.id, "code", f.code, "err", f.err, "to", j.prev.describe())
	rolledBack := true
	note := ""
	if err := e.apply(ctx, j.prev, stopDeadline(j.set)); err != nil {
		if ctx.Err() != nil {
			return errAbandoned
		}
		rolledBack, note = false, fmt.Sprintf("; rollback failed: %v", err)
	} else if len(j.prev.comps) > 0 {
		// Not the job's context: a canceled job still waits for its rollback.
		if err := e.waitStarted(ctx, j.prev.names(), j.prev.healthTimeout().Duration); err != nil {
			if ctx.Err() != nil {
				return errAbandoned
			}
			note = fmt.Sprintf("; after the rollback: %v", err)
		}
	}
	status := store.DeploymentFailed
	if f.code == CodeCanceled {
		status = store.DeploymentCanceled
	}
	now := e.clock.Now()
	detail := "restored " + j.prev.describe() + note
	err := e.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.AppendStep(ctx, j.id, store.Step{Name: StepRollback, Status: store.StepDone, Detail: detail, At: now}); err != nil {
			return err
		}
		return tx.UpdateDeploymentStatus(ctx, j.id, store.DeploymentUpdate{
			Status: status, RolledBack: rolledBack, Error: f.err.Error() + note, ErrorCode: f.code, At: now})
	})
	if err != nil {
		return e.storeErr(ctx, fmt.Errorf("record rollback of %s: %w", j.id, err))
	}
	e.publish(j.id, "", status.String(), failureDetail(f))
	e.progress(j, StepRollback, store.StepDone, detail, now)
	return nil
}

// finishUntouched records a deployment that failed or was canceled before
// anything running was touched.
func (e *Engine) finishUntouched(ctx context.Context, j *job, f *failure) error {
	status := store.DeploymentFailed
	if f.code == CodeCanceled {
		status = store.DeploymentCanceled
	}
	err := e.cfg.Store.UpdateDeploymentStatus(ctx, j.id, store.DeploymentUpdate{
		Status: status, Error: f.err.Error(), ErrorCode: f.code, At: e.clock.Now()})
	if err != nil {
		return e.storeErr(ctx, fmt.Errorf("record failure of %s: %w", j.id, err))
	}
	e.log.Warn("deployment ended before changing anything", "deployment", j.id, "status", status, "code", f.code, "err", f.err)
	e.publish(j.id, "", status.String(), failureDetail(f))
	e.broadcast()
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
		if after := e.runs(names); after == before && !strings.Contains(after, "!") {
			return nil
		}
		e.log.Debug("a component restarted or left RUNNING while settling; waiting again", "ready", before, "now", e.runs(names))
	}
}

// runs describes the runs of names: each one's pid and restart count, with
// "!" for one that is not ready.
func (e *Engine) runs(names []string) string {
	sts := e.states()
	var b strings.Builder
	for _, n := range names {
		st := sts[n]
		ready := st.Ready() || st.State == supervisor.StateFinished
		fmt.Fprintf(&b, "%s:%d:%d", n, st.Pid, st.Restarts)
		if !ready {
			b.WriteString("!")
		}
		b.WriteString(" ")
	}
	return b.String()
}

// canceled returns the cancel failure once the job was canceled.
func (e *Engine) canceled(j *job) *failure {
	if cause := context.Cause(j.ctx); isCancel(cause) {
		return &failure{code: CodeCanceled, err: cause}
	}
	return nil
}

func isCancel(err error) bool {
	var c *cancelCause
	return errors.As(err, &c)
}

// step durably appends one checkpoint, then tells FaultHook.
func (e *Engine) step(ctx context.Context, j *job, name string, status store.StepStatus, detail string) error {
	at := e.clock.Now()
	if _, err := e.cfg.Store.AppendStep(ctx, j.id, store.Step{Name: name, Status: status, Detail: detail, At: at}); err != nil {
		return e.storeErr(ctx, fmt.Errorf("checkpoint %s %s of %s: %w", name, status, j.id, err))
	}
	e.progress(j, name, status, detail, at)
	return nil
}

// progress notes a durable checkpoint: the job's step, an event, waiters
// woken, FaultHook told.
func (e *Engine) progress(j *job, name string, status store.StepStatus, detail string, at time.Time) {
	e.mu.Lock()
	j.step, j.since, j.waiting = checkpoint(name, status), at, ""
	e.mu.Unlock()
	e.log.Debug("deployment step", "deployment", j.id, "step", name, "status", status, "detail", detail)
	e.publish(j.id, name, string(status), detail)
	e.broadcast()
	e.hook(checkpoint(name, status))
}

func (e *Engine) setWaiting(j *job, what string) {
	e.mu.Lock()
	j.waiting = what
	e.mu.Unlock()
}

func (e *Engine) setStatus(ctx context.Context, j *job, st store.DeploymentStatus, detail string) error {
	if err := e.cfg.Store.UpdateDeploymentStatus(ctx, j.id, store.DeploymentUpdate{Status: st, At: e.clock.Now()}); err != nil {
		return e.storeErr(ctx, fmt.Errorf("deployment %s: %w", j.id, err))
	}
	e.log.Info("deployment started", "deployment", j.id, "origin", j.origin)
	e.publish(j.id, "", st.String(), detail)
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
