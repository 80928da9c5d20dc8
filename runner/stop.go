package runner

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"golang.org/x/sys/unix"
)

// Defaults for the zero values of StopOptions, as a recipe's defaults.
const (
	DefaultStopTimeout     = 10 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// StopOptions say how to stop a component.
type StopOptions struct {
	// Signal is sent to the whole process group first; 0 = SIGTERM.
	Signal syscall.Signal
	// Timeout is how long to wait after Signal before SIGKILL goes to the
	// group and the cgroup; 0 = DefaultStopTimeout.
	Timeout time.Duration
	// ShutdownScript runs with /bin/sh -c before Signal, as the component
	// runs (same user, environment, directory, rlimits; not in its
	// cgroup), its output in the component's log; "" = none.
	ShutdownScript string
	// ShutdownTimeout bounds ShutdownScript; past it the script is killed
	// and the stop goes on. 0 = DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

func (o StopOptions) withDefaults() StopOptions {
	if o.Signal == 0 {
		o.Signal = syscall.SIGTERM
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultStopTimeout
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	return o
}

// ParseSignal reads a signal name as recipes write it: "SIGTERM", "TERM"
// or "sigterm".
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if s := unix.SignalNum(n); s != 0 {
		return s, nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}

// Stop stops the component and returns how it ended: the shutdown script
// (if any), then opts.Signal to the process group, then, after
// opts.Timeout, SIGKILL to the group and the cgroup. It returns only once
// the process has been reaped and nothing of the component is left (see
// Done). When ctx ends first the SIGKILL comes at once; the wait for the
// exit never depends on ctx. Stop is idempotent: a second call, concurrent
// or later, waits for the same end and returns the same status.
func (p *Process) Stop(ctx context.Context, opts StopOptions) ExitStatus {
	opts = opts.withDefaults()
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	select {
	case <-p.done:
		return p.Wait()
	default:
	}
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()

	if opts.ShutdownScript != "" && ctx.Err() == nil {
		p.runShutdown(ctx, opts)
	}
	_ = p.Signal(opts.Signal) // ErrFinished: it is already gone
	timer := time.NewTimer(opts.Timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.kill()
	case <-ctx.Done():
		p.kill()
	}
	return p.Wait()
}

// runShutdown runs the shutdown script to its end or its timeout. What
// goes wrong is written to the component's log; the stop goes on anyway.
func (p *Process) runShutdown(ctx context.Context, opts StopOptions) {
	spec := p.spec
	spec.Command, spec.Script, spec.Args = "", opts.ShutdownScript, nil
	sctx, cancel := context.WithTimeout(ctx, opts.ShutdownTimeout)
	defer cancel()
	sp, err := p.r.spawn(sctx, spec, p.acct, p.log, &cgroup.Group{})
	if err != nil {
		p.note("shutdown script did not start: " + err.Error())
		return
	}
	select {
	case <-sp.Done():
		if st := sp.Wait(); !st.Success() {
			p.note("shutdown script " + st.Reason())
		}
	case <-sctx.Done():
		sp.Stop(context.WithoutCancel(ctx), StopOptions{Signal: syscall.SIGKILL})
		p.note(fmt.Sprintf("shutdown script killed after %s", opts.ShutdownTimeout))
	}
}

// note writes a line of KeyStone's own into the component's log.
func (p *Process) note(text string) {
	if err := p.log.Write(logs.Agent, text); err != nil {
		p.r.log.Warn("write component log", "component", p.spec.Component, "err", err)
	}
}
