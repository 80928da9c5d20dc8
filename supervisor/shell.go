package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/runner"
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
// it). The whole process group is killed on timeout or cancellation.
func runShell(ctx context.Context, u ShellUser, c *Component, what, dir string, env map[string]string, script string, timeout time.Duration) error {
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if err == nil {
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
	return se
}

// ShellInstaller runs install scripts with /bin/sh -c in the component's
// version folder, as its ShellUser says, with the agent's environment plus
// the component's secrets.
type ShellInstaller struct {
	ShellUser
}

// DefaultInstallTimeout bounds an install script with no timeout.
const DefaultInstallTimeout = 2 * time.Minute

// Install runs the install script, if any, within its timeout.
func (i ShellInstaller) Install(ctx context.Context, c *Component) error {
	s := c.Recipe.Lifecycle.Install
	if s == nil || strings.TrimSpace(s.Script) == "" {
		return nil
	}
	return runShell(ctx, i.ShellUser, c, "install script", c.VersionDir, c.Secrets, s.Script, orDuration(s.Timeout.Duration, DefaultInstallTimeout))
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
