// Package svcmgr is a systemd stand-in for tests: it runs one program the
// way systemd runs the agent's unit (Type=notify, NotifyAccess=main,
// WatchdogSec=, Restart=always, KillMode=process,
// ExecReload=/bin/kill -HUP $MAINPID), so that the agent's self-update
// (an execve in place, same pid) and its automatic revert can be tested on
// a machine, or in a container, without systemd.
//
// It owns one service's life: the notify socket and the sd_notify protocol
// (READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1, WATCHDOG=trigger,
// WATCHDOG_USEC=, MAINPID=, STATUS=, EXTEND_TIMEOUT_USEC=), the unit's
// states (activating, active, reloading, deactivating, inactive, failed),
// the start, stop, reload, abort and watchdog timeouts, restarts with a
// start limit, and a record of what happened (every notification, every
// start, every exit) for tests to assert on. It decides as systemd's
// src/core/service.c decides; where it deliberately differs, the field or
// method says so.
//
// It must not be used by shipped code: internal/ holds test-only helpers,
// and internal/layering fails the build when a shipped package imports
// anything under internal. It never touches a real service manager, a
// unit file or a cgroup.
//
// # Processes
//
// The main process is a child of the test process (os/exec), reaped by
// its Wait. KillMode=process: a stop, a watchdog abort or a timeout
// signals the main process only; processes it started are left alone,
// exactly as the agent's workloads survive a restart of the agent's unit,
// and the test that made them kills them. Orphaned descendants reparent
// to the machine's init (or to whatever subreaper is above the test).
// svcmgr does not make the test process a child subreaper
// (PR_SET_CHILD_SUBREAPER): it would then have to reap adopted orphans
// with wait(-1), and a wait(-1) in a Go test process steals the exit
// status of every other child the test has started (os/exec, the agent's
// runners under test), whose Wait would then fail with ECHILD.
//
// After MAINPID=N the main process may not be a child of the test
// process; svcmgr then watches it with a pidfd and learns that it exited
// but not how (Exit.Unknown), as systemd does for a main process that is
// not its child.
//
// The service runs in a new session (as systemd's setsid) and with
// PR_SET_PDEATHSIG=SIGKILL, which systemd does not set: a test binary
// that crashes must not leave an agent running. The setting is not
// inherited by the service's own children.
//
// # WATCHDOG_PID
//
// systemd sets WATCHDOG_PID to the main pid after the fork, and
// go-systemd's daemon.SdWatchdogEnabled returns 0 when WATCHDOG_PID is set
// to another pid. os/exec cannot know the pid before the child runs, so
// with WatchdogSec > 0 the service is started through /bin/sh:
//
//	/bin/sh -c 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" "$@"' EXEC ARGS...
//
// The shell knows its pid, exports it and execs the service in place, so
// the main pid, the pid in WATCHDOG_PID and the pid that sends
// notifications are one and the same, as under systemd, and they stay so
// across the service's own execve. Without a watchdog the service is
// executed directly.
//
// # Time
//
// svcmgr uses the real clock: its timeouts are real timers. Tests must not
// assert on how long anything took; the timeouts of Config and the
// deadlines of the contexts passed to the Wait methods are bounds only.
package svcmgr
