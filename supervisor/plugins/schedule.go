package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// schedule is one launched plugin: the goroutine that runs it on time, one
// run at a time, and the supervisor's Handle of it. Everything but status
// and the channels is owned by the goroutine.
type schedule struct {
	l         *Launcher
	name      string
	p         *plugin.Plugin
	keepState bool
	log       *slog.Logger

	slots       slots
	state       json.RawMessage // handed to the next run
	stateLoaded bool
	lastErr     string // of the previous failed run, to log a repeat quietly

	status atomic.Pointer[Status]
	runs   chan supervisor.RunResult // the latest result, for the supervisor

	wake   chan uint64     // a timer fired, for the slot armed with this generation
	now    chan nowRequest // RunNow
	ctx    context.Context // the schedule's life; Stop cancels it
	cancel context.CancelFunc
	done   chan struct{}
	closed sync.Once // the plugin is released once
}

// nowRequest asks the schedule for one run at once.
type nowRequest struct {
	ctx   context.Context
	reply chan nowReply // buffered
}

type nowReply struct {
	metrics []plugin.Metric
	err     error
}

func newSchedule(ctx context.Context, l *Launcher, name string, p *plugin.Plugin, sl slots, keepState bool) *schedule {
	s := &schedule{
		l: l, name: name, p: p, keepState: keepState, slots: sl,
		log:  l.cfg.Logger.With("component", name),
		wake: make(chan uint64),
		now:  make(chan nowRequest),
		done: make(chan struct{}),
		runs: make(chan supervisor.RunResult, 1),
	}
	// The schedule lives like a process: past the launch call, until Stop.
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.status.Store(&Status{})
	return s
}

// run is the schedule goroutine: it arms a timer for the next slot, runs
// the plugin when it fires or when asked to run now, and accounts for the
// slots that came due meanwhile.
func (s *schedule) run() {
	defer close(s.done)
	defer s.l.forget(s)
	var (
		gen   uint64
		timer supervisor.Timer
	)
	arm := func() {
		gen++
		g := gen
		delay := since(s.l.cfg.Clock.Now(), s.slots.fire)
		timer = s.l.cfg.Clock.AfterFunc(delay, func() {
			select {
			case s.wake <- g:
			case <-s.ctx.Done():
			}
		})
	}
	arm()
	for {
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case g := <-s.wake:
			if g != gen {
				continue // a timer that fired while a run now was running
			}
			s.slots.fired(s.l.cfg.Rand())
			s.runOnce(s.ctx)
			arm()
		case req := <-s.now:
			timer.Stop()
			// Cancelled by the caller, or by Stop.
			ctx, cancel := context.WithCancel(req.ctx)
			unhook := context.AfterFunc(s.ctx, cancel)
			metrics, err := s.runOnce(ctx)
			unhook()
			cancel()
			req.reply <- nowReply{metrics: metrics, err: err}
			arm()
		}
	}
}

// runOnce runs the plugin, keeps its state, exports its values or its
// failure, counts the slots that came due meanwhile, and reports.
func (s *schedule) runOnce(ctx context.Context) ([]plugin.Metric, error) {
	clock := s.l.cfg.Clock
	start := clock.Now()
	res, err := s.attempt(ctx)
	end := clock.Now()
	if skipped := s.slots.ranUntil(end, s.l.cfg.Rand); skipped > 0 {
		s.skipped(skipped)
	}
	if err != nil && ctx.Err() != nil && !isRunError(err) {
		return nil, err // cancelled: not the plugin's doing, not counted
	}
	took := since(start, end)
	st := *s.status.Load()
	st.Runs++
	st.LastRun, st.LastDuration = end, took
	outcome := plugin.OutcomeOK
	var metrics []plugin.Metric
	if err != nil {
		outcome = plugin.OutcomeError
		st.Failures++
		st.ConsecutiveFailures++
		st.LastError = err.Error()
	} else {
		metrics = res.Metrics
		if st.ConsecutiveFailures > 0 {
			s.l.cfg.Events.Publish(events.Event{Kind: events.KindPlugin, Component: s.name, Reason: "runs succeed again",
				Detail: map[string]string{"result": string(plugin.OutcomeOK), "failures": strconv.Itoa(st.ConsecutiveFailures)}})
			s.log.Info("plugin runs succeed again", "after_failures", st.ConsecutiveFailures)
		}
		st.ConsecutiveFailures = 0
		st.LastSuccess = end
		s.lastErr = ""
	}
	s.status.Store(&st)
	if xerr := s.l.cfg.Exporter.Record(s.name, outcome, took, metrics); xerr != nil {
		s.log.Warn("export plugin values", "err", xerr)
	}
	if err != nil {
		s.failed(err, st)
	}
	if s.l.cfg.OnRun != nil {
		s.l.cfg.OnRun(Report{Component: s.name, Metrics: metrics, Err: err, Status: st})
	}
	s.report(supervisor.RunResult{OK: err == nil, Detail: st.LastError})
	return metrics, err
}

// report hands the supervisor the latest result, replacing one it has not
// taken yet: only the last run's outcome matters.
func (s *schedule) report(r supervisor.RunResult) {
	if r.OK {
		r.Detail = ""
	}
	for {
		select {
		case s.runs <- r:
			return
		default:
			select {
			case <-s.runs:
			default:
			}
		}
	}
}

// attempt is one run with the state handed over and kept: the state is
// loaded before the first run, and a returned state is saved before the
// run counts as good. A run whose state cannot be saved fails as a whole,
// so that values and state never part ways.
func (s *schedule) attempt(ctx context.Context) (*plugin.Result, error) {
	if s.keepState && !s.stateLoaded && s.l.cfg.State != nil {
		st, err := s.l.cfg.State.LoadPluginState(ctx, s.name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("plugin %s: load state: %w", s.name, err)
		default:
			s.state = st
		}
		s.stateLoaded = true
	}
	var state json.RawMessage
	if s.keepState {
		state = s.state
	}
	res, err := s.p.Run(ctx, state)
	if err != nil {
		return nil, err
	}
	if s.keepState && res.HasState && !bytes.Equal(res.State, s.state) {
		if s.l.cfg.State != nil {
			if err := s.l.cfg.State.SavePluginState(ctx, s.name, res.State); err != nil {
				return nil, fmt.Errorf("plugin %s: save state: %w", s.name, err)
			}
		}
		s.state = res.State
	}
	return res, nil
}

// skipped counts slots that came due while a run still ran.
func (s *schedule) skipped(n int) {
	st := *s.status.Load()
	st.Skipped += uint64(n)
	s.status.Store(&st)
	for range n {
		if err := s.l.cfg.Exporter.Record(s.name, plugin.OutcomeSkipped, 0, nil); err != nil {
			s.log.Warn("export plugin skip", "err", err)
		}
	}
	s.log.Warn("plugin run skipped: the previous run was still running", "skipped", n)
}

// failed tells about a failed run: an event when the plugin starts
// failing, a log line (quiet when the same error repeats), and a note in
// the component's log.
func (s *schedule) failed(err error, st Status) {
	msg := err.Error()
	if st.ConsecutiveFailures == 1 {
		s.l.cfg.Events.Publish(events.Event{Kind: events.KindPlugin, Component: s.name, Reason: msg,
			Detail: map[string]string{"result": string(plugin.OutcomeError)}})
	}
	if msg != s.lastErr {
		s.log.Warn("plugin run failed", "err", msg, "consecutive_failures", st.ConsecutiveFailures)
	} else {
		s.log.Debug("plugin run failed again", "err", msg, "consecutive_failures", st.ConsecutiveFailures)
	}
	s.lastErr = msg
	if s.l.cfg.Logs != nil {
		if lg, lerr := s.l.cfg.Logs.Log(s.name); lerr == nil {
			_ = lg.Write(logs.Agent, "plugin run failed: "+msg)
		}
	}
}

// runNow asks the schedule goroutine for a run and waits for it.
func (s *schedule) runNow(ctx context.Context) ([]plugin.Metric, error) {
	req := nowRequest{ctx: ctx, reply: make(chan nowReply, 1)}
	select {
	case s.now <- req:
	case <-s.done:
		return nil, fmt.Errorf("plugin %s: %w", s.name, ErrNotScheduled)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.metrics, r.err
	case <-s.done:
		return nil, fmt.Errorf("plugin %s: %w", s.name, ErrNotScheduled)
	}
}

func isRunError(err error) bool {
	var re *plugin.RunError
	return errors.As(err, &re)
}

// The supervisor.Handle of a schedule: no process, Done when stopped.

// Pid is 0: a schedule is not a process.
func (s *schedule) Pid() int { return 0 }

// Process is empty: there is nothing to find again after an agent restart.
func (s *schedule) Process() store.Process { return store.Process{} }

// Runs delivers the outcome of the latest run.
func (s *schedule) Runs() <-chan supervisor.RunResult { return s.runs }

// Done is closed once the schedule has ended (after Stop).
func (s *schedule) Done() <-chan struct{} { return s.done }

// Exit is a clean end: a schedule only ends when stopped.
func (s *schedule) Exit() supervisor.ExitStatus { return supervisor.ExitStatus{} }

// Stop ends the schedule: a run in progress is stopped at once (its
// process killed, its module closed) and not counted; then the plugin is
// released. It returns once the schedule has ended, or when ctx ends.
func (s *schedule) Stop(ctx context.Context) error {
	s.cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	s.closed.Do(func() { err = s.p.Close(context.WithoutCancel(ctx)) })
	return err
}
