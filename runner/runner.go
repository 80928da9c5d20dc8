package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/runner/shim"
	"golang.org/x/sys/unix"
)

// Config is what a Runner needs from the agent.
type Config struct {
	// ShimPath is the executable started as the shim; it must call
	// IsShim/ShimMain (or shim.Is/shim.Main) first thing in main (or
	// TestMain). "" = the file keystone-shim (ShimName) next to the running
	// executable if there is one and it is executable, else this program,
	// as /proc/self/exe (so that a self-update replacing the file on disk
	// does not matter).
	ShimPath string
	// Logs receives every component's stdout and stderr. Required.
	Logs *logs.Manager
	// Cgroups says where component groups go and whether to use them;
	// the zero value uses the host's cgroups under cgroup.DefaultRoot.
	Cgroups cgroup.Config
	// Logger gets what the runner notices on its own (a cgroup that could
	// not be removed, a log write that failed). nil = discard.
	Logger *slog.Logger
}

// Runner starts component processes. It is safe for concurrent use; it
// keeps no process table (the supervisor owns the handles).
type Runner struct {
	shim     string
	shimComm string // the shim's /proc comm before exec
	logs     *logs.Manager
	cgroups  *cgroup.Manager
	log      *slog.Logger
	poll     poller // reads every process's output, hears every exit

	mu     sync.Mutex
	warned map[string]bool // component, limit and value already reported

	live        atomic.Int64 // processes started or adopted and not yet reaped
	adopted     atomic.Int64 // of which adopted from the previous image (Adopt)
	noCloneInto atomic.Bool  // the kernel refused CLONE_INTO_CGROUP once
	noDirect    atomic.Bool  // no spawner thread here: every start goes through the shim

	seccompOnce    sync.Once // compiles the default seccomp profile
	seccompDefault []unix.SockFilter
	seccompErr     error
}

// New checks cfg and looks at the host's cgroups once.
func New(cfg Config) (*Runner, error) {
	if cfg.Logs == nil {
		return nil, errors.New("runner: Config.Logs is required")
	}
	shimPath := cfg.ShimPath
	if shimPath == "" {
		exe, _ := os.Executable() // "" when unknown: the running image
		shimPath = defaultShim(exe)
	}
	if st, err := os.Stat(shimPath); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("runner: shim %s is not an executable file", shimPath)
	}
	cg, err := cgroup.NewManager(cfg.Cgroups)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{shim: shimPath, shimComm: commOf(shimPath), logs: cfg.Logs, cgroups: cg, log: logger, poll: poller{log: logger}, warned: map[string]bool{}}, nil
}

// CgroupMode is the cgroup layout the runner uses on this host.
func (r *Runner) CgroupMode() cgroup.Mode { return r.cgroups.Mode() }

// Warning is a requested limit the runner could not enforce. The process
// runs without it. Start returns each once per component and value, and
// the caller reports it (an event and a log line), loudly.
type Warning struct {
	Component string
	cgroup.Unapplied
}

// Error says which component runs without which limit and why.
func (w Warning) Error() string { return w.Component + ": " + w.Unapplied.Error() }

// warnOnce keeps the unapplied limits not reported before.
func (r *Runner) warnOnce(component string, unapplied []cgroup.Unapplied) []Warning {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Warning
	for _, u := range unapplied {
		key := component + "\x00" + u.Limit + "\x00" + u.Value
		if !r.warned[key] {
			r.warned[key] = true
			out = append(out, Warning{Component: component, Unapplied: u})
		}
	}
	return out
}

// Start starts the process described by spec in its own process group and
// cgroup, with stdout and stderr going to the component's log. ctx bounds
// the start only; the process outlives it and runs until it exits or Stop.
//
// Limits the host cannot enforce come back as warnings, not errors (each
// once per component and value). The error wraps ErrInvalidSpec for a bad
// spec, ErrRoot for a process that would run as root without
// spec.AllowRoot, cgroup.ErrBusy when processes of an earlier run are still
// in the component's cgroup (stop them with StopOrphan first), or is a
// *SetupError when the new process failed before exec.
func (r *Runner) Start(ctx context.Context, spec ProcessSpec) (*Process, []Warning, error) {
	if err := spec.validate(); err != nil {
		return nil, nil, err
	}
	acct, err := CheckRunAs(spec.RunAs, spec.AllowRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", spec.Component, err)
	}
	lg, err := r.logs.Log(spec.Component)
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", spec.Component, err)
	}
	filter, err := r.seccompProgram(spec.Seccomp)
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", spec.Component, err)
	}
	group, unapplied, err := r.cgroups.CreateV2(spec.Component, spec.limits())
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", spec.Component, err)
	}
	var p *Process
	if r.canStartDirect(spec, acct) {
		unapplied = append(unapplied, r.cgroups.CreateV1(group, spec.limits())...)
		p, err = r.startDirect(spec, acct, lg, group, filter)
		if err != nil {
			// The shim does the same work step by step and says which
			// step failed: a program that cannot be exec'd, a directory
			// that cannot be entered as that user.
			r.log.Debug("start without the shim failed; trying with it", "component", spec.Component, "err", err)
			p, err = r.startWithShim(ctx, spec, acct, lg, group, filter, nil)
		}
	} else {
		// The v1 groups are made while the shim starts (its Go runtime
		// takes milliseconds to get to its request, which is when it joins
		// them).
		v1 := make(chan []cgroup.Unapplied, 1)
		go func() { v1 <- r.cgroups.CreateV1(group, spec.limits()) }()
		p, err = r.startWithShim(ctx, spec, acct, lg, group, filter, func() { unapplied = append(unapplied, <-v1...) })
	}
	if err != nil {
		if derr := group.Delete(); derr != nil {
			r.log.Warn("remove cgroup after failed start", "component", spec.Component, "err", derr)
		}
		return nil, nil, err
	}
	return p, r.warnOnce(spec.Component, unapplied), nil
}

// startWithShim starts the shim for spec in group and takes it through
// its gate; beforeGate, if set, runs once the shim is started and before
// its request is sent.
func (r *Runner) startWithShim(ctx context.Context, spec ProcessSpec, acct *Account, lg *logs.Log, group *cgroup.Group, filter []unix.SockFilter, beforeGate func()) (*Process, error) {
	sp, err := r.startFresh(spec, group)
	if beforeGate != nil {
		beforeGate()
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Component, err)
	}
	return r.gate(ctx, spec, acct, lg, group, sp, filter)
}

// spawn starts the shim, places it in group, hands it the request and
// waits until it has exec'd (or reports why not). group may be a zero
// (untracked) group.
//
// The shim is cloned straight into the group's v2 directory where the
// kernel allows it, and joins the v1 groups itself, moving only the thread
// that will exec (see shim.Request.Tasks): moving a whole running process
// between cgroups waits for an RCU grace period (7 ms on the reference
// machine, more on small boards), moving the calling thread does not.
func (r *Runner) spawn(ctx context.Context, spec ProcessSpec, acct *Account, lg *logs.Log, group *cgroup.Group) (*Process, error) {
	filter, err := r.seccompProgram(spec.Seccomp)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Component, err)
	}
	sp, err := r.startFresh(spec, group)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Component, err)
	}
	return r.gate(ctx, spec, acct, lg, group, sp, filter)
}

// gate takes the started shim sp through its gate: into the v2 group if
// it was not born there, then the request; it waits until the shim has
// exec'd (or reports why not) and returns the running process. On failure
// the shim is killed and reaped.
func (r *Runner) gate(ctx context.Context, spec ProcessSpec, acct *Account, lg *logs.Log, group *cgroup.Group, sp *shimProc, filter []unix.SockFilter) (*Process, error) {
	r.live.Add(1)
	pid := sp.pid
	abort := func(err error) error {
		// The leader is not reaped yet, so its group id is still ours.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		if _, kerr := (targets{pgid: pid, group: group}).killAll(sweepBound); kerr != nil {
			r.log.Warn("processes left after failed start", "component", spec.Component, "err", kerr)
		}
		_ = sp.cmd.Wait()
		sp.closePipes()
		r.live.Add(-1)
		return err
	}

	if !sp.clonedV2 {
		if err := group.AddV2(pid); err != nil {
			return nil, abort(fmt.Errorf("start %s: %w", spec.Component, err))
		}
	}
	path, argv := spec.argv()
	req := shim.Request{Path: path, Argv: argv, Env: spec.environ(acct), Dir: spec.Dir, UID: -1, GID: -1,
		NoRoot: !spec.AllowRoot, NoNewPrivs: spec.NoNewPrivileges, OpenFiles: spec.OpenFiles, Tasks: group.V1TaskFiles(), Seccomp: filter}
	if req.Dir == "" {
		req.Dir = "/"
	}
	if acct != nil {
		req.UID, req.GID = int64(acct.UID), int64(acct.GID)
	}
	// Sending the request opens the gate: the shim is in its v2 group (if
	// any) now, and joins its v1 groups before anything else.
	werr := json.NewEncoder(sp.reqW).Encode(req)
	_ = sp.reqW.Close()

	stopRead := context.AfterFunc(ctx, func() { _ = sp.failR.SetReadDeadline(time.Unix(1, 0)) })
	report, rerr := io.ReadAll(sp.failR)
	stopRead()
	_ = sp.failR.Close()
	switch {
	case len(report) > 0:
		var f shim.Failure
		if err := json.Unmarshal(report, &f); err != nil {
			f = shim.Failure{Step: "shim", Message: string(report)}
		}
		return nil, abort(&SetupError{Component: spec.Component, Step: f.Step, Err: errors.New(f.Message)})
	case rerr != nil:
		return nil, abort(fmt.Errorf("start %s: waiting for exec: %w", spec.Component, errors.Join(ctx.Err(), rerr)))
	case werr != nil:
		return nil, abort(&SetupError{Component: spec.Component, Step: "send request", Err: werr})
	}
	// EOF with no report: the shim exec'd, or died without a word (a
	// runtime crash).
	if !execed(pid, r.shimComm, commOf(path)) {
		return nil, abort(&SetupError{Component: spec.Component, Step: "shim", Err: errors.New("died before exec")})
	}

	p, err := r.track(spec, acct, lg, group, sp.cmd, pid, sp.ticks, sp.outR, sp.errR)
	if err != nil {
		return nil, abort(err)
	}
	return p, nil
}

// track makes the handle of a process that has exec'd its program and
// starts reading its output and waiting for its end (it takes outR and
// errR over). cmd is nil for a process started without os/exec (it is
// reaped with wait4). On error the caller still has the process to kill
// and reap.
func (r *Runner) track(spec ProcessSpec, acct *Account, lg *logs.Log, group *cgroup.Group, cmd *exec.Cmd, pid int, ticks uint64, outR, errR *os.File) (*Process, error) {
	p := &Process{
		r: r, spec: spec, acct: acct, cmd: cmd, pid: pid, ticks: ticks, group: group, cgPath: group.Path(), log: lg,
		errTail: NewTail(StderrTailBytes), done: make(chan struct{}),
	}
	if err := p.follow(outR, errR); err != nil {
		return nil, err
	}
	return p, nil
}

// startFresh starts a shim for spec, cloned straight into the v2 part of
// group when it has one and the kernel allows it (CLONE_INTO_CGROUP), so
// that it never runs outside its group there.
func (r *Runner) startFresh(spec ProcessSpec, group *cgroup.Group) (*shimProc, error) {
	if !r.noCloneInto.Load() {
		dir, err := group.OpenV2Dir()
		if err != nil {
			return nil, err
		}
		if dir != nil {
			sp, err := r.startShim(spec.Component, spec.Stdin, dir)
			_ = dir.Close()
			if err == nil {
				return sp, nil
			}
			// An old kernel, or clone3 filtered: move it in after the start.
			r.noCloneInto.Store(true)
			r.log.Info("starting processes into their cgroup is refused; moving them in after the start instead", "err", err)
		}
	}
	return r.startShim(spec.Component, spec.Stdin, nil)
}

// commOf is the name the kernel shows for a process running path: the base
// name, cut to 15 bytes.
func commOf(path string) string {
	c := filepath.Base(path)
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

// execed tells, once the shim's report pipe has closed without a report,
// whether it closed because the shim exec'd the target or because the shim
// died. The kernel closes close-on-exec files after switching to the new
// program's memory but before renaming the process, and a dying process
// releases its memory before its files: so a readable /proc/PID/exe means
// it exec'd; otherwise it has ended, with its final name telling which
// program it ended as (the same name for both is taken as exec'd).
func execed(pid int, shimComm, targetComm string) bool {
	if _, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return true
	}
	st, err := readStat(pid)
	if err != nil {
		return true // cannot tell; its exit will be reported as an exit
	}
	return st.Comm != shimComm || targetComm == shimComm
}
