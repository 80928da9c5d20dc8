package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/logs"
)

// The supervisor runs two kinds of short shell commands itself: install
// scripts and cmd: health checks. Component processes (and their shutdown
// scripts) always come from a Launcher.

// ShellUser says who install scripts and cmd: health checks run as: the
// agent, so that an install may chmod or chown what the component later
// runs as its own user; but when the agent is root and root is not
// allowed, the component's user (run_as, else DefaultRunAs), and never
// uid 0.
type ShellUser struct {
	// DefaultRunAs is agent.toml's default_run_as.
	DefaultRunAs string
	// AllowRoot is agent.toml's security.allow_root; false = no script
	// runs as root.
	AllowRoot bool
}

// credential is what the script of c runs with; nil = the agent's own.
// c may be nil (a check without a component): DefaultRunAs then applies.
func (u ShellUser) credential(c *Component) (*syscall.Credential, error) {
	if u.AllowRoot {
		return nil, nil
	}
	if _, err := runner.CheckRunAs("", false); err == nil {
		return nil, nil // the agent is not root
	}
	runAs := u.DefaultRunAs
	if c != nil && c.Recipe != nil && c.Recipe.Security.RunAs != "" {
		runAs = c.Recipe.Security.RunAs
	}
	acct, err := runner.CheckRunAs(runAs, false)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: acct.UID, Gid: acct.GID, Groups: []uint32{}}, nil
}

// ScriptError is a shell script that failed, with the tail of its stderr.
type ScriptError struct {
	What     string // "install script", "health check"
	ExitCode int    // -1 when killed or not started
	TimedOut bool
	Stderr   string // the last bytes of its stderr, trimmed
	Err      error  // what exec reported
}

func (e *ScriptError) Error() string {
	var s string
	switch {
	case e.TimedOut:
		s = e.What + " timed out"
	case e.ExitCode >= 0:
		s = fmt.Sprintf("%s exited with status %d", e.What, e.ExitCode)
	default:
		s = fmt.Sprintf("%s failed: %v", e.What, e.Err)
	}
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

func (e *ScriptError) Unwrap() error { return e.Err }

// runShell runs the script of c with /bin/sh -c in dir, as u says, with
// env added to the agent's environment, within timeout (0: only ctx limits
// it). The whole process group is killed on timeout or cancellation. What
// it writes goes to lg when not nil.
func runShell(ctx context.Context, u ShellUser, c *Component, what, dir string, env map[string]string, script string, timeout time.Duration, lg *logs.Log) error {
	cred, err := u.credential(c)
	if err != nil {
		return &ScriptError{What: what, ExitCode: -1, Err: err}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	tail := runner.NewTail(runner.StderrTailBytes)
	cmd.Stderr = tail
	if lg != nil {
		stdout, stderr, wait := logPipes(lg)
		defer wait()
		cmd.Stdout, cmd.Stderr = stdout, io.MultiWriter(tail, stderr)
		_ = lg.Write(logs.Agent, what+" started")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if err == nil {
		if lg != nil {
			_ = lg.Write(logs.Agent, what+" succeeded")
		}
		return nil
	}
	se := &ScriptError{What: what, ExitCode: -1, Stderr: tail.String(), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		se.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		se.TimedOut = true
	}
	if lg != nil {
		msg := se.Error()
		if se.Stderr != "" {
			msg = strings.TrimSuffix(msg, ": "+se.Stderr) // its lines are just above
		}
		_ = lg.Write(logs.Agent, msg)
	}
	return se
}

// logPipes returns writers whose lines go to lg as stdout and stderr, and
// a function that closes them and waits until every line is in.
func logPipes(lg *logs.Log) (stdout, stderr io.Writer, wait func()) {
	var wg sync.WaitGroup
	pipe := func(stream logs.Stream) *io.PipeWriter {
		r, w := io.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = lg.Capture(stream, r)
			_, _ = io.Copy(io.Discard, r) // never block the script
		}()
		return w
	}
	out, errw := pipe(logs.Stdout), pipe(logs.Stderr)
	return out, errw, func() {
		out.Close()
		errw.Close()
		wg.Wait()
	}
}

// ShellInstaller runs install scripts with /bin/sh -c in the component's
// version folder, as its ShellUser says, with the agent's environment plus
// the component's secrets.
type ShellInstaller struct {
	ShellUser
	// Logs receives what the scripts write, in the component's log, where
	// `keystonectl component logs` shows it; nil drops it.
	Logs *logs.Manager
}

// DefaultInstallTimeout bounds an install script with no timeout.
const DefaultInstallTimeout = 2 * time.Minute

// Install runs the install script, if any, within its timeout.
func (i ShellInstaller) Install(ctx context.Context, c *Component) error {
	s := c.Recipe.Lifecycle.Install
	if s == nil || strings.TrimSpace(s.Script) == "" {
		return nil
	}
	var lg *logs.Log
	if i.Logs != nil {
		lg, _ = i.Logs.Log(c.Name()) // without a log the script still runs
	}
	return runShell(ctx, i.ShellUser, c, "install script", c.VersionDir, c.Secrets, s.Script, orDuration(s.Timeout.Duration, DefaultInstallTimeout), lg)
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
