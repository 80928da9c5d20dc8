package supervisor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/store"
)

// execLauncher starts real processes for the tests: /bin/sh -c script (or
// the command), in its own process group, stopped with the stop signal and
// then SIGKILL of the group.
type execLauncher struct{}

type execHandle struct {
	cmd      *exec.Cmd
	done     chan struct{}
	exit     ExitStatus
	timeout  time.Duration
	sig      syscall.Signal
	shutdown *recipes.Script
}

func (execLauncher) Launch(ctx context.Context, c *Component) (Handle, error) {
	run := c.Recipe.Lifecycle.Run
	var cmd *exec.Cmd
	if run.Script != "" {
		cmd = exec.Command("/bin/sh", "-c", run.Script)
	} else {
		cmd = exec.Command(run.Command, run.Args...)
	}
	cmd.Dir = c.WorkDir
	cmd.Env = os.Environ()
	for k, v := range run.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &execHandle{cmd: cmd, done: make(chan struct{}), timeout: run.StopTimeout.Duration, sig: syscall.SIGTERM,
		shutdown: c.Recipe.Lifecycle.Shutdown}
	if run.StopSignal == "SIGINT" {
		h.sig = syscall.SIGINT
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			ws := ee.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				h.exit = ExitStatus{Code: -1, Signal: unixSignalName(ws.Signal())}
			} else {
				h.exit = ExitStatus{Code: ws.ExitStatus()}
			}
		case err != nil:
			h.exit = ExitStatus{Code: -1, Err: err}
		}
		close(h.done)
	}()
	return h, nil
}

func unixSignalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return "signal " + strconv.Itoa(int(s))
}

func (h *execHandle) Pid() int { return h.cmd.Process.Pid }

func (h *execHandle) Process() store.Process {
	return store.Process{PID: h.Pid(), StartTicks: procStartTicks(h.Pid()), PGID: h.Pid()}
}

func (h *execHandle) Done() <-chan struct{} { return h.done }
func (h *execHandle) Exit() ExitStatus      { return h.exit }

func (h *execHandle) Stop(ctx context.Context) error {
	if s := h.shutdown; s != nil && s.Script != "" {
		_ = runShell(ctx, "shutdown script", h.cmd.Dir, nil, s.Script, orDuration(s.Timeout.Duration, 10*time.Second))
	}
	pg := -h.Pid()
	_ = syscall.Kill(pg, h.sig)
	t := time.NewTimer(h.timeout)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		_ = syscall.Kill(pg, syscall.SIGKILL)
		<-h.done
	case <-ctx.Done():
		_ = syscall.Kill(pg, syscall.SIGKILL)
		<-h.done
	}
	return nil
}
