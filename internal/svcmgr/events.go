package svcmgr

import (
	"os"
	"strconv"
	"syscall"
	"time"
)

// onNotify acts on one datagram as systemd's service_notify_message does,
// in its order: MAINPID=, MONOTONIC_USEC=, then STOPPING=1 over READY=1
// over RELOADING=1, STATUS= (kept in the record only),
// EXTEND_TIMEOUT_USEC=, WATCHDOG=, WATCHDOG_USEC=.
func (m *Manager) onNotify(d datagram) {
	n := Notification{Time: d.time, PID: d.pid, Message: d.msg}
	if m.a.main == nil || d.pid == 0 || d.pid != m.a.main.pid {
		// NotifyAccess=main: "reception only permitted for main PID".
		m.update(func(v *view) { v.ignored = append(v.ignored, n) })
		return
	}
	m.update(func(v *view) { v.notifications = append(v.notifications, n) })

	if s, ok := n.Get("MAINPID"); ok && m.a.phase.live() {
		m.switchMain(s)
	}
	var mono uint64
	monoOK := false
	if s, ok := n.Get("MONOTONIC_USEC"); ok {
		mono, monoOK = parseUint(s)
	}
	// stamped: the RELOADING=1 belongs to the reload Reload asked for.
	stamped := func() bool {
		if !m.cfg.ReloadNeedsMonotonic {
			return true
		}
		return monoOK && m.a.reload != nil && mono >= m.a.reload.beginMono
	}

	switch {
	case n.Has("STOPPING=1"):
		switch m.a.phase {
		case phRunning, phReloadSignal, phReloadNotify:
			// "as if we SIGTERM'd it": wait TimeoutStopSec for the exit.
			m.finishReload(ErrReloadAborted)
			m.armTimer(m.cfg.TimeoutStopSec)
			m.setPhase(phStopSigterm, "stopping=1")
		}
	case n.Has("READY=1"):
		switch m.a.phase {
		case phStart:
			m.stopTimer()
			m.setPhase(phRunning, "ready=1")
			m.resetWatchdog() // the watchdog starts at READY=1
		case phReloadNotify:
			m.endReload(nil, "ready=1")
		case phReloadSignal:
			if n.Has("RELOADING=1") && stamped() {
				m.endReload(nil, "ready=1")
			}
		}
	case n.Has("RELOADING=1"):
		switch m.a.phase {
		case phReloadSignal:
			if stamped() {
				m.setPhase(phReloadNotify, "reloading=1") // the timeout runs on
			}
		case phRunning:
			// A reload the service started itself.
			m.armTimer(m.cfg.TimeoutStartSec)
			m.setPhase(phReloadNotify, "reloading=1")
		}
	}

	if s, ok := n.Get("EXTEND_TIMEOUT_USEC"); ok {
		if u, ok := parseUint(s); ok {
			m.extendTimeouts(time.Duration(u) * time.Microsecond)
		}
	}
	if s, ok := n.Get("WATCHDOG"); ok && m.a.phase.live() {
		switch s {
		case "1":
			m.resetWatchdog()
		case "trigger":
			m.onWatchdog("watchdog=trigger")
		}
	}
	if s, ok := n.Get("WATCHDOG_USEC"); ok && m.a.phase.live() {
		if u, ok := parseUint(s); ok {
			m.a.wdOverride = time.Duration(u) * time.Microsecond
			m.a.wdOverrideSet = true
			m.resetWatchdog()
		}
	}
}

func parseUint(s string) (uint64, bool) {
	u, err := strconv.ParseUint(s, 10, 64)
	return u, err == nil
}

// switchMain makes pid the main process (MAINPID=), watched through a
// pidfd since it is not our child. systemd also checks that the pid is in
// the unit's cgroup (or that the sender is root); svcmgr has no cgroup and
// only refuses pids that cannot be a service: 1, itself, a dead one.
func (m *Manager) switchMain(s string) {
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 1 || pid == os.Getpid() || pid == m.a.main.pid {
		return
	}
	p, err := adopt(pid, m.exits, m.quit)
	if err != nil {
		return
	}
	if old := m.a.main; old.release != nil {
		old.release()
	}
	// The old main process, if our child, is still reaped by its Wait;
	// its exit no longer concerns the unit.
	m.a.main = p
	m.update(func(v *view) { v.mainPID = pid })
}

// endReload finishes the reload in progress (asked for or not).
func (m *Manager) endReload(err error, why string) {
	m.stopTimer()
	m.setPhase(phRunning, why) // before the answer: the caller finds the unit active
	m.finishReload(err)
}

// finishReload answers the Reload waiting, if any.
func (m *Manager) finishReload(err error) {
	if m.a.reload != nil {
		m.a.reload.done <- err
		m.a.reload = nil
	}
}

// extendTimeouts is EXTEND_TIMEOUT_USEC=: the state's timeout and the
// watchdog are pushed to at least d from now, never brought closer.
func (m *Manager) extendTimeouts(d time.Duration) {
	to := time.Now().Add(d)
	if !m.a.timerDeadline.IsZero() && m.a.timerDeadline.Before(to) {
		m.a.timer.Reset(time.Until(to))
		m.a.timerDeadline = to
	}
	if !m.a.wdDeadline.IsZero() && m.a.wdDeadline.Before(to) {
		m.a.wd.Reset(time.Until(to))
		m.a.wdDeadline = to
	}
}

// resetWatchdog (re)arms the watchdog for a full period from now.
func (m *Manager) resetWatchdog() {
	d := m.cfg.WatchdogSec
	if m.a.wdOverrideSet {
		d = m.a.wdOverride
	}
	if d <= 0 {
		m.stopWatchdog()
		return
	}
	m.a.wd.Reset(d)
	m.a.wdDeadline = time.Now().Add(d)
}

func (m *Manager) stopWatchdog() {
	m.a.wd.Stop()
	m.a.wdDeadline = time.Time{}
}

// onWatchdog: no WATCHDOG=1 in time, or WATCHDOG=trigger. The main
// process gets WatchdogSignal, then SIGKILL after TimeoutAbortSec.
func (m *Manager) onWatchdog(why string) {
	m.a.wdDeadline = time.Time{}
	if !m.a.phase.live() {
		return
	}
	m.terminate(phStopWatchdog, m.cfg.TimeoutAbortSec, ResultWatchdog, why)
}

// terminate signals the main process for phase p (SIGTERM, the watchdog
// signal, or SIGKILL) and waits up to timeout for its exit (0: as long as
// it takes). result becomes the run's result if it is the first failure.
func (m *Manager) terminate(p phase, timeout time.Duration, result Result, why string) {
	if m.a.result == ResultSuccess {
		m.a.result = result
	}
	m.finishReload(ErrReloadAborted)
	sig := syscall.SIGTERM
	switch p {
	case phStopWatchdog:
		sig = m.cfg.WatchdogSignal
	case phStopSigkill:
		sig = syscall.SIGKILL
	}
	if m.a.main != nil {
		m.a.main.signal(sig) //nolint:errcheck // a process already gone reports its exit anyway
	}
	if timeout > 0 {
		m.armTimer(timeout)
	} else {
		m.stopTimer()
	}
	m.setPhase(p, why)
}

// onExit: the main process ended (exits of former main processes are
// ignored, as systemd ignores processes that are not the main one).
func (m *Manager) onExit(ev exitEvent) {
	if m.a.main == nil || ev.pid != m.a.main.pid {
		return
	}
	code, sig, core, f := resultOf(ev)
	if m.a.phase == phStart && f == ResultSuccess {
		f = ResultProtocol // Type=notify: exited before READY=1
	}
	if m.a.result == ResultSuccess {
		m.a.result = f
	}
	e := Exit{
		PID: ev.pid, Time: time.Now(), Exec: m.a.main.exec,
		Code: code, Signal: sig, CoreDump: core, Unknown: ev.unknown,
		Result: m.a.result,
	}
	if m.a.main.release != nil {
		m.a.main.release()
	}
	m.a.main = nil
	m.update(func(v *view) { v.exits = append(v.exits, e) })
	m.enterDead("exit")
}

// beginClose stops the service for Close or the end of Start's context.
func (m *Manager) beginClose() {
	m.a.closing = true
	m.stop("close")
}

// stop is `systemctl stop`: no restart after this.
func (m *Manager) stop(why string) {
	m.a.stopping = true
	switch {
	case m.a.phase.live():
		m.terminate(phStopSigterm, m.cfg.TimeoutStopSec, ResultSuccess, why)
	case m.a.phase == phAutoRestart:
		// systemd: a stop cancels the restart and leaves the unit dead,
		// not failed, whatever the last run's result.
		m.stopTimer()
		m.a.result = ResultSuccess
		m.setPhase(phDead, why)
	}
}
