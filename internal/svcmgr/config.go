package svcmgr

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
	"time"
)

// Defaults, systemd's own unless said otherwise.
const (
	// DefaultTimeoutStartSec is systemd's DefaultTimeoutStartSec.
	DefaultTimeoutStartSec = 90 * time.Second
	// DefaultTimeoutStopSec is systemd's DefaultTimeoutStopSec.
	DefaultTimeoutStopSec = 90 * time.Second
	// DefaultRestartSec is systemd's RestartSec default.
	DefaultRestartSec = 100 * time.Millisecond
	// DefaultWatchdogSignal is systemd's WatchdogSignal default.
	DefaultWatchdogSignal = syscall.SIGABRT
)

// Config describes the service as a unit file would. Every zero value
// means systemd's default unless its comment says otherwise.
type Config struct {
	// Exec is the program's absolute path, as ExecStart='s first word. It
	// is resolved at every start, not once: when it is a symlink (say
	// <root>/current/keystone-agent), each restart runs whatever it points
	// to then. Required.
	Exec string
	// Args are the arguments after argv[0]; argv[0] is Exec.
	Args []string
	// Env is the service's environment. Nil inherits the test process's
	// environment (unlike systemd, which starts from a clean one). Any
	// NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, LISTEN_PID, LISTEN_FDS
	// and LISTEN_FDNAMES in it are dropped, so that a test run under
	// systemd never talks to the real manager; svcmgr adds its own
	// NOTIFY_SOCKET, and WATCHDOG_USEC and WATCHDOG_PID when
	// WatchdogSec > 0.
	Env []string
	// Dir is the working directory (WorkingDirectory=); empty means the
	// test process's, where systemd would use /.
	Dir string
	// Stdout and Stderr receive the service's output; nil discards it
	// (as os/exec's nil, where systemd would send it to the journal). A
	// writer that is not an *os.File is fed through a pipe that Close
	// closes: descendants of the service that write to it afterwards get
	// EPIPE.
	Stdout, Stderr io.Writer

	// TimeoutStartSec bounds activating (until READY=1) and each reload
	// (until READY=1 after RELOADING=1). A start that times out is
	// terminated as a failed start (SIGTERM, then SIGKILL after
	// TimeoutStopSec), result "timeout"; a reload that times out only
	// ends the reload, as systemd does. Zero means 90s.
	TimeoutStartSec time.Duration
	// TimeoutStopSec is how long after SIGTERM (a stop, a failed start,
	// STOPPING=1) the main process gets SIGKILL. Zero means 90s.
	TimeoutStopSec time.Duration
	// TimeoutAbortSec is how long after the WatchdogSignal the main
	// process gets SIGKILL. Zero means TimeoutStopSec.
	TimeoutAbortSec time.Duration

	// WatchdogSec enables the watchdog: from READY=1 on, while active or
	// reloading, a WATCHDOG=1 must come at least this often, or the main
	// process gets WatchdogSignal, then SIGKILL after TimeoutAbortSec, and
	// is restarted. It is passed as WATCHDOG_USEC. Zero disables it
	// (WATCHDOG=trigger still acts, as in systemd).
	WatchdogSec time.Duration
	// WatchdogSignal is sent on a watchdog timeout; zero means SIGABRT.
	WatchdogSignal syscall.Signal

	// NoRestart is Restart=no. The zero value is Restart=always, the
	// agent's unit: restart after any exit, kill or timeout, but not
	// after Stop or once the start limit is hit.
	NoRestart bool
	// RestartSec is the pause before a restart; zero means 100ms.
	RestartSec time.Duration
	// StartLimitBurst and StartLimitInterval: a start that would be the
	// Burst-th + 1 within Interval fails instead, and the unit stays
	// failed (result "start-limit-hit"). Zero Burst means no limit, where
	// systemd's default is 5 starts in 10s; zero Interval with a Burst
	// means 10s.
	StartLimitBurst    int
	StartLimitInterval time.Duration

	// ReloadNeedsMonotonic makes Reload behave as a Type=notify-reload
	// unit's reload: a RELOADING=1 counts only when it carries
	// MONOTONIC_USEC= no earlier than the SIGHUP. Without it Reload takes
	// any RELOADING=1 after the SIGHUP, as the Type=notify unit with
	// ExecReload=kill -HUP does.
	ReloadNeedsMonotonic bool
}

// errConfig marks a Config that cannot start.
var errConfig = errors.New("svcmgr: bad config")

func (c Config) withDefaults() (Config, error) {
	if c.Exec == "" || !filepath.IsAbs(c.Exec) {
		return c, fmt.Errorf("%w: Exec %q must be an absolute path", errConfig, c.Exec)
	}
	if c.TimeoutStartSec <= 0 {
		c.TimeoutStartSec = DefaultTimeoutStartSec
	}
	if c.TimeoutStopSec <= 0 {
		c.TimeoutStopSec = DefaultTimeoutStopSec
	}
	if c.TimeoutAbortSec <= 0 {
		c.TimeoutAbortSec = c.TimeoutStopSec
	}
	if c.WatchdogSignal == 0 {
		c.WatchdogSignal = DefaultWatchdogSignal
	}
	if c.RestartSec <= 0 {
		c.RestartSec = DefaultRestartSec
	}
	if c.StartLimitBurst > 0 && c.StartLimitInterval <= 0 {
		c.StartLimitInterval = 10 * time.Second
	}
	if c.WatchdogSec < 0 {
		c.WatchdogSec = 0
	}
	return c, nil
}
