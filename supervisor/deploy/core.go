package deploy

import (
	"cmp"
	"strings"
	"time"
)

// The decision core of one deployment's life: events in (its turn came, the
// agent restarted at a checkpoint, the operation asked for succeeded or
// failed, a cancel, a preemption), effects out (checkpoint, fetch, apply a
// set, wait for it, commit, keep, roll back, finish). It does no I/O, reads
// no clock and is not safe for concurrent use: the executor (execute.go)
// owns one per running deployment, performs each batch of effects in order
// and feeds back the outcome of the batch's last one. Deadlines are inputs,
// in coreConfig. Model: etcd raft's RawNode, and the supervisor's component
// Core; testdata/core_*.txt are its transcripts.

// eventKind says what happened to a deployment.
type eventKind int

const (
	eventBegin   eventKind = iota // its turn came; run it from the start
	eventResume                   // the agent restarted with it unfinished at the checkpoints steps
	eventDone                     // the batch's operation succeeded
	eventFailed                   // the batch's operation failed, with failure
	eventCancel                   // deploy cancel asked, for reason
	eventPreempt                  // deployment by preempts this one
)

// event is one input of the core.
type event struct {
	kind eventKind
	// failure: eventFailed's cause; for eventBegin and eventResume, that
	// the recorded set can no longer be built (the recipes no longer render).
	failure *failure
	steps   []Step // eventResume
	reason  string // eventCancel
	by      string // eventPreempt
}

// effectKind says what the executor must do. Fetch, plan, apply, wait and
// settle are operations, whose outcome comes back as the next event; the
// plan is one so that a cancel is seen right after it.
type effectKind int

const (
	effectStatus   effectKind = iota // record status (IN_PROGRESS)
	effectStep                       // append the checkpoint step:stepStatus, recording failure when set
	effectFetch                      // download, verify and place every artifact of the new set
	effectPlan                       // checkpoint the plan and the previous set in one transaction
	effectApply                      // hand target to the supervisor within (the new set's work folders made first)
	effectWait                       // wait within for target to be ready and stay so with the same processes
	effectSettle                     // keep: let what can still start finish; fails with failure completed
	effectCommit                     // record the commit, the new set current, SUCCEEDED
	effectKeep                       // record the commit of the new set under keep, FAILED with failure
	effectRollback                   // record the rollback done and status, with rolledBack, failure and note
	effectFinish                     // record status with failure; nothing running was touched
)

// target is the set an effect applies or waits for.
type target int

const (
	targetNew target = iota
	targetPrevious
)

// effect is one thing the executor must do. The effects of a batch come in
// order and only the last may be an operation: everything before it is a
// checkpoint that must be durable before the operation starts.
type effect struct {
	kind       effectKind
	status     Status     // effectStatus, effectRollback, effectFinish
	step       StepName   // effectStep
	stepStatus StepStatus // effectStep
	target     target     // effectApply, effectWait
	within     time.Duration
	failure    *failure // see effectKind
	rolledBack bool     // effectRollback
	note       string   // effectRollback: how the rollback went, added to the error
}

// coreConfig is what the core knows of the two sets.
type coreConfig struct {
	keep      bool          // failure_policy = "keep"
	prevEmpty bool          // nothing ran before: a rollback has nothing to wait for
	stopNew   time.Duration // applying the new set: the previous one stops
	stopPrev  time.Duration // rolling back: the new set stops
	waitNew   time.Duration // health_timeout plus the longest new install
	waitPrev  time.Duration // the previous set's health_timeout
}

// phase is the operation whose outcome the core awaits.
type phase int

const (
	phaseIdle phase = iota
	phaseFetch
	phasePlan
	phaseApply
	phaseWait
	phaseSettle
	phaseReapply // resumed under keep: the new set handed over again
	phaseApplyPrevious
	phaseWaitPrevious
	phaseOver
)

// core decides one deployment's course.
type core struct {
	cfg     coreConfig
	at      phase
	failure *failure // why it will not commit, once known
	cancel  *failure // a cancel asked, acted on at the next safe point
	out     []effect
}

func newCore(cfg coreConfig) *core { return &core{cfg: cfg} }

// over reports whether the deployment has reached its final record.
func (c *core) over() bool { return c.at == phaseOver }

// Step applies one event and returns the effects to perform, in order.
// A cancel or a preemption returns none: it is acted on at the next safe
// point (before the fetch, after it, after the plan, before and after the
// stop, or by interrupting the fetch or the start wait).
func (c *core) Step(ev event) []effect {
	c.out = nil
	switch ev.kind {
	case eventCancel: // the first cancel or preemption is the one recorded
		c.cancel = cmp.Or(c.cancel, fail(CodeCanceled, "%s", ev.reason))
	case eventPreempt:
		c.cancel = cmp.Or(c.cancel, fail(CodeCanceled, "preempted by deployment %s", ev.by))
	case eventBegin:
		c.begin(resumeFresh, nil, ev.failure)
	case eventResume:
		from, recorded := resumePoint(ev.steps, c.cfg.keep)
		c.begin(from, recorded, ev.failure)
	case eventDone:
		c.outcome(nil)
	case eventFailed:
		c.outcome(ev.failure)
	}
	out := c.out
	c.out = nil
	return out
}

// orCanceled is f, or the cancel when one was asked: an operation a cancel
// interrupts fails because of it.
func (c *core) orCanceled(f *failure) *failure {
	if c.cancel != nil {
		return c.cancel
	}
	return f
}

func (c *core) begin(from resumeFrom, recorded, broken *failure) {
	switch {
	case broken != nil && from == resumeFresh:
		c.finish(broken)
	case broken != nil:
		c.rollback(broken)
	case from == resumeFresh && c.cancel != nil:
		c.finish(c.cancel)
	case from == resumeFresh:
		c.emit(effect{kind: effectStatus, status: StatusInProgress})
		c.record(StepFetch, StepStarted, nil)
		c.operate(phaseFetch, effect{kind: effectFetch})
	case from == resumeApply:
		c.stop()
	case from == resumeKeep:
		c.failure = recorded
		c.operate(phaseReapply, effect{kind: effectApply, target: targetNew, within: c.cfg.stopNew})
	default:
		c.rollback(recorded)
	}
}

// outcome goes on from the operation awaited; f is its failure, nil when
// it succeeded.
func (c *core) outcome(f *failure) {
	switch c.at {
	case phaseFetch:
		if f != nil {
			f = c.orCanceled(f)
			c.record(StepFetch, StepFailed, f)
			c.finish(f)
			return
		}
		c.record(StepFetch, StepDone, nil)
		if c.cancel != nil {
			c.finish(c.cancel)
			return
		}
		c.operate(phasePlan, effect{kind: effectPlan})
	case phasePlan:
		if c.cancel != nil {
			c.finish(c.cancel)
			return
		}
		c.stop()
	case phaseApply:
		if f != nil {
			c.record(StepStop, StepFailed, f)
			c.failed(f)
			return
		}
		c.record(StepStop, StepDone, nil)
		if c.cancel != nil {
			c.rollback(c.cancel)
			return
		}
		c.record(StepStart, StepStarted, nil)
		c.operate(phaseWait, effect{kind: effectWait, target: targetNew, within: c.cfg.waitNew})
	case phaseWait:
		if f == nil {
			c.record(StepStart, StepDone, nil)
			c.record(StepCommit, StepStarted, nil)
			c.final(effect{kind: effectCommit, status: StatusSucceeded})
			return
		}
		if f.code != CodeHealthTimeout { // the deadline came first
			f = c.orCanceled(f)
		}
		c.record(StepStart, StepFailed, f)
		c.failed(f)
	default:
		c.restored(f)
	}
}

// restored goes on once the set kept or the previous one is handed over.
func (c *core) restored(f *failure) {
	switch c.at {
	case phaseSettle:
		c.final(effect{kind: effectKeep, status: StatusFailed, failure: f})
	case phaseReapply:
		// What fails to start again was already recorded as failed.
		c.final(effect{kind: effectKeep, status: StatusFailed, failure: c.failure})
	case phaseApplyPrevious:
		switch {
		case f != nil:
			c.rolledBack(false, "; rollback failed: "+f.err.Error())
		case c.cfg.prevEmpty:
			c.rolledBack(true, "")
		default:
			c.operate(phaseWaitPrevious, effect{kind: effectWait, target: targetPrevious, within: c.cfg.waitPrev})
		}
	case phaseWaitPrevious:
		note := ""
		if f != nil {
			note = "; after the rollback: " + f.err.Error()
		}
		c.rolledBack(true, note)
	}
}

// stop starts the stop step: past the plan, a cancel rolls back.
func (c *core) stop() {
	if c.cancel != nil {
		c.rollback(c.cancel)
		return
	}
	c.record(StepStop, StepStarted, nil)
	c.operate(phaseApply, effect{kind: effectApply, target: targetNew, within: c.cfg.stopNew})
}

// failed decides between keep and rollback once the new set failed. A
// cancel always rolls back: keep is for what failed, not for what was
// called off.
func (c *core) failed(f *failure) {
	c.failure = f
	if c.cfg.keep && f.code != CodeCanceled {
		c.operate(phaseSettle, effect{kind: effectSettle, failure: f})
		return
	}
	c.rollback(f)
}

func (c *core) rollback(f *failure) {
	c.failure = f
	c.record(StepRollback, StepStarted, f)
	c.operate(phaseApplyPrevious, effect{kind: effectApply, target: targetPrevious, within: c.cfg.stopPrev})
}

func (c *core) rolledBack(ok bool, note string) {
	c.final(effect{kind: effectRollback, status: finalStatus(c.failure), rolledBack: ok, failure: c.failure, note: note})
}

func (c *core) finish(f *failure) {
	c.final(effect{kind: effectFinish, status: finalStatus(f), failure: f})
}

// finalStatus is CANCELED for a cancel, FAILED otherwise.
func finalStatus(f *failure) Status {
	if f.code == CodeCanceled {
		return StatusCanceled
	}
	return StatusFailed
}

func (c *core) emit(ef effect) { c.out = append(c.out, ef) }

func (c *core) record(step StepName, status StepStatus, f *failure) {
	c.emit(effect{kind: effectStep, step: step, stepStatus: status, failure: f})
}

func (c *core) operate(p phase, ef effect) {
	c.at = p
	c.emit(ef)
}

func (c *core) final(ef effect) {
	c.at = phaseOver
	c.emit(ef)
}

// resumeFrom is where a deployment found unfinished at start goes on.
type resumeFrom int

const (
	resumeFresh    resumeFrom = iota // nothing running was touched: run it from the fetch
	resumeApply                      // planned, no failure recorded: apply the new set again, wait, commit
	resumeRollback                   // a failure or cancel recorded after the plan: finish the rollback
	resumeKeep                       // a failure recorded under keep: apply the new set again, record the failure
)

// resumePoint reads a deployment's checkpoints and says where it goes on,
// and, past a failure, the failure recorded.
func resumePoint(steps []Step, keep bool) (resumeFrom, *failure) {
	planned := false
	var failed *failure
	for _, st := range steps {
		switch {
		case st.Name == StepPlan && st.Status == StepDone:
			planned = true
		case st.Name == StepRollback && st.Status == StepStarted:
			return resumeRollback, parseFailure(st.Detail)
		case planned && st.Status == StepFailed:
			failed = parseFailure(st.Detail)
		}
	}
	switch {
	case !planned:
		return resumeFresh, nil
	case failed == nil:
		return resumeApply, nil
	case keep && failed.code != CodeCanceled:
		return resumeKeep, failed
	}
	return resumeRollback, failed
}

// failureDetail is how a failure is written into a step's detail: the
// code, then the message.
func failureDetail(f *failure) string { return string(f.code) + ": " + f.err.Error() }

// parseFailure reads back a detail failureDetail wrote: the code is a
// field of the record, written by the engine, not an error's text.
func parseFailure(detail string) *failure {
	code, msg, ok := strings.Cut(detail, ": ")
	if !ok || code == "" || strings.ToUpper(code) != code || strings.ContainsAny(code, " .") {
		return fail(CodeInternal, "%s", detail)
	}
	return fail(Code(code), "%s", msg)
}
