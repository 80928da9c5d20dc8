package svcmgr

import (
	"context"
	"fmt"
	"slices"
	"syscall"
)

// State returns the unit's current state.
func (m *Manager) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.state
}

// MainPID returns the main process's pid ($MAINPID), or 0 when none runs.
// It stays the same across the service's own execve.
func (m *Manager) MainPID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.mainPID
}

// Starts returns how many times the main process was started (runs that
// could not exec are not counted).
func (m *Manager) Starts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.starts
}

// Notifications returns a copy of every notification accepted from the
// main process, in the order received.
func (m *Manager) Notifications() []Notification {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.view.notifications)
}

// Ignored returns a copy of the notifications refused because they did not
// come from the main process (NotifyAccess=main), or came without
// credentials.
func (m *Manager) Ignored() []Notification {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.view.ignored)
}

// Exits returns a copy of the ends of the main process's runs, in order.
func (m *Manager) Exits() []Exit {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.view.exits)
}

// Transitions returns a copy of the unit's changes of state, in order;
// unlike WaitState it also shows states that did not last.
func (m *Manager) Transitions() []Transition {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.view.transitions)
}

// WaitState waits until the unit is in state s. It returns at once when it
// already is; a state entered and left between two looks can be missed
// (Transitions records them all). It fails with ErrFailed or ErrState when
// the unit has stopped for good in another state, ErrClosed once closed,
// or ctx's error.
func (m *Manager) WaitState(ctx context.Context, s State) error {
	return m.wait(ctx, "state "+string(s), func(v *view) bool { return v.state == s })
}

// WaitReady waits until the unit is active: READY=1 after a start, or the
// end of a reload.
func (m *Manager) WaitReady(ctx context.Context) error {
	return m.WaitState(ctx, Active)
}

// WaitStarts waits until the main process has been started n times.
func (m *Manager) WaitStarts(ctx context.Context, n int) error {
	return m.wait(ctx, fmt.Sprintf("%d starts", n), func(v *view) bool { return v.starts >= n })
}

// WaitExits waits until the main process has ended n times and returns
// the exits so far.
func (m *Manager) WaitExits(ctx context.Context, n int) ([]Exit, error) {
	err := m.wait(ctx, fmt.Sprintf("%d exits", n), func(v *view) bool { return len(v.exits) >= n })
	return m.Exits(), err
}

// WaitNotification waits for an accepted notification holding assignment
// (e.g. "STATUS=migrated") and returns the first such, earlier ones
// included.
func (m *Manager) WaitNotification(ctx context.Context, assignment string) (Notification, error) {
	var found Notification
	err := m.wait(ctx, "notification "+assignment, func(v *view) bool {
		for _, n := range v.notifications {
			if n.Has(assignment) {
				found = n
				return true
			}
		}
		return false
	})
	return found, err
}

// WaitFor waits until cond holds, asking it again after every change the
// manager records (a notification, a change of state or of main pid, a
// start, an exit). cond may call the manager's accessors; what names it in
// the error.
func (m *Manager) WaitFor(ctx context.Context, what string, cond func() bool) error {
	for {
		m.mu.Lock()
		wake, state := m.wake, m.view.state
		m.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("svcmgr: waiting for %s (unit %s): %w", what, state, ctx.Err())
		}
	}
}

// wait waits until cond, called under the lock, holds.
func (m *Manager) wait(ctx context.Context, what string, cond func(*view) bool) error {
	for {
		m.mu.Lock()
		ok := cond(&m.view)
		state, final, closed := m.view.state, m.view.final, m.view.closed
		wake := m.wake
		m.mu.Unlock()
		switch {
		case ok:
			return nil
		case closed:
			return fmt.Errorf("waiting for %s: %w", what, ErrClosed)
		case final && state == Failed:
			return fmt.Errorf("waiting for %s: %w", what, ErrFailed)
		case final:
			return fmt.Errorf("waiting for %s: %w: unit is %s and will not start again", what, ErrState, state)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("svcmgr: waiting for %s (unit %s): %w", what, state, ctx.Err())
		}
	}
}

// call runs f in the actor and returns once it has run.
func (m *Manager) call(ctx context.Context, f func()) error {
	ran := make(chan struct{})
	select {
	case m.cmds <- func() { f(); close(ran) }:
	case <-m.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	<-ran
	return nil
}

// Reload is `systemctl reload` of the agent's unit: SIGHUP to the main
// process (ExecReload=/bin/kill -HUP $MAINPID), then, as a
// Type=notify-reload unit waits, RELOADING=1 and then READY=1 from the
// main process, within TimeoutStartSec. (A Type=notify unit's reload
// returns as soon as kill exits; Reload waits for the service.) The unit
// must be active. It returns nil once READY=1 came, ErrReloadTimeout
// (the unit is active again, not killed), ErrReloadAborted when the main
// process exited or the unit was stopped first, or ctx's error (the
// reload goes on). The watchdog keeps running during the reload.
func (m *Manager) Reload(ctx context.Context) error {
	var done chan error
	var err error
	if cerr := m.call(ctx, func() {
		if m.a.phase != phRunning {
			err = fmt.Errorf("svcmgr: reload: %w: unit is %s", ErrState, m.a.phase.state())
			return
		}
		r := &reloadReq{beginMono: monotonicUsec(), done: make(chan error, 1)}
		m.a.reload, done = r, r.done
		m.armTimer(m.cfg.TimeoutStartSec)
		m.setPhase(phReloadSignal, "reload")
		m.a.main.signal(syscall.SIGHUP) //nolint:errcheck // a process already gone reports its exit
	}); cerr != nil {
		return fmt.Errorf("svcmgr: reload: %w", cerr)
	}
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("svcmgr: reload: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("svcmgr: reload: %w", ctx.Err())
	}
}

// Kill sends sig to the main process only, as `systemctl kill
// --kill-whom=main` does; what follows (an exit, a restart) is the unit's
// ordinary handling.
func (m *Manager) Kill(ctx context.Context, sig syscall.Signal) error {
	var err error
	if cerr := m.call(ctx, func() {
		if m.a.main == nil {
			err = fmt.Errorf("svcmgr: kill: %w: no main process (unit %s)", ErrState, m.a.phase.state())
			return
		}
		err = m.a.main.signal(sig)
	}); cerr != nil {
		return fmt.Errorf("svcmgr: kill: %w", cerr)
	}
	return err
}

// Stop is `systemctl stop`: SIGTERM to the main process only
// (KillMode=process), SIGKILL after TimeoutStopSec, no restart; a pending
// restart is cancelled. It returns once the unit is inactive (or failed,
// when the stop needed SIGKILL), or with ctx's error while the stop goes
// on. The manager stays usable for reading; it does not start again.
func (m *Manager) Stop(ctx context.Context) error {
	if err := m.call(ctx, func() { m.stop("stop") }); err != nil {
		return fmt.Errorf("svcmgr: stop: %w", err)
	}
	err := m.wait(ctx, "stop", func(v *view) bool { return v.final })
	if err != nil {
		return fmt.Errorf("svcmgr: stop: %w", err)
	}
	return nil
}

// Close stops the service as Stop does (which can take TimeoutStopSec and
// the SIGKILL after it), then removes the notify socket and its folder and
// waits for everything it started to end, but for processes that outlive
// the main one (KillMode=process). It may be called more than once.
func (m *Manager) Close() error {
	m.once.Do(func() { close(m.closeReq) })
	<-m.done
	return nil
}
