package runner

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/runner/shim"
	"golang.org/x/sys/unix"
)

// A direct start runs the component's program without the shim: the
// process is forked from a spawner, an OS thread of the agent's kept for
// nothing else, and execs the target at once. The confinements the shim
// applies in the new process are taken there another way:
//
//   - the process group, the credentials (supplementary groups cleared,
//     then gid, then uid), the working directory and the v2 group
//     (clone-into-cgroup) by the fork itself (syscall.SysProcAttr);
//   - no_new_privs and the "default" seccomp filter from the spawner
//     thread, which set them on itself once: both belong to a thread
//     (the filter installed without synchronising the other threads) and
//     a forked child inherits them; the default filter refuses nothing
//     the fork, the credentials or the exec need;
//   - the v1 groups the same way: the spawner thread joins the
//     component's v1 groups through their "tasks" files (a thread moves
//     without the kernel's global lock for moving processes), forks, and
//     goes back to its own groups.
//
// A filter from a profile file, the open_files rlimit (a limit of the
// whole process) or a stdin to feed still need the shim (canStartDirect). A
// Go runtime starting in the shim is most of a restart's time; a direct
// start spares it.
//
// The Go runtime never clones one of its threads from a thread locked
// with LockOSThread (it asks its template thread instead), so neither
// no_new_privs nor a component's groups can reach another agent thread.

// spawners are the process's spawner threads, one for each combination of
// no_new_privs and filter in use, each started at its first use and kept
// for the life of the process: a thread belongs to the process, not to one
// Runner.
var spawners struct {
	mu  sync.Mutex
	all map[spawnerKind]*spawner
}

// spawnerKind is what a spawner thread carries: no_new_privs, and the
// default seccomp filter or none.
type spawnerKind struct {
	noNewPrivs     bool
	defaultSeccomp bool
}

// spawner is one spawner thread and its queue.
type spawner struct {
	tid  int // the thread's id, once ready
	reqs chan spawnRequest
	gone chan struct{} // closed when the thread has ended
	// err is set when the thread could not be made ready, or ended
	// because it could not go back to its own groups.
	mu  sync.Mutex
	err error
}

// spawnRequest is one fork and exec on the spawner thread.
type spawnRequest struct {
	path  string
	argv  []string
	attr  *syscall.ProcAttr
	tasks []string // v1 "tasks" files of the component's groups
	group string   // the component's cgroup path, to find each hierarchy's mount
	reply chan spawnReply
}

type spawnReply struct {
	pid int
	err error
}

// errSpawnerGone is returned once a spawner thread has ended.
var errSpawnerGone = errors.New("the spawner thread has ended")

// errNoWayBack is returned when the spawner cannot tell its own group in
// one of the component's v1 hierarchies, so it could not leave the
// component's group after the fork: it does not join it at all.
var errNoWayBack = errors.New("the spawner thread's own group in a cgroup v1 hierarchy is unknown")

// forkExec runs req on the spawner thread.
func (s *spawner) forkExec(req spawnRequest) (int, error) {
	req.reply = make(chan spawnReply, 1)
	select {
	case s.reqs <- req:
	case <-s.gone:
		return 0, errors.Join(errSpawnerGone, s.failed())
	}
	rep := <-req.reply
	return rep.pid, rep.err
}

// spawnerFor returns the spawner thread of kind, starting it if needed;
// filter is the default profile's program, for a kind that carries it.
func spawnerFor(kind spawnerKind, filter []unix.SockFilter) (*spawner, error) {
	spawners.mu.Lock()
	defer spawners.mu.Unlock()
	if spawners.all == nil {
		spawners.all = map[spawnerKind]*spawner{}
	}
	if s := spawners.all[kind]; s != nil {
		return s, s.failed()
	}
	s := &spawner{reqs: make(chan spawnRequest), gone: make(chan struct{})}
	ready := make(chan error, 1)
	go s.run(kind, filter, ready)
	if err := <-ready; err != nil {
		s.fail(err)
	}
	spawners.all[kind] = s
	return s, s.failed()
}

func (s *spawner) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *spawner) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// run is the spawner thread. It never unlocks the thread: when it returns
// the runtime ends the thread with it, and with it whatever the thread
// was made to carry.
func (s *spawner) run(kind spawnerKind, filter []unix.SockFilter, ready chan<- error) {
	runtime.LockOSThread()
	defer close(s.gone)
	if kind.noNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			ready <- fmt.Errorf("no_new_privs on the spawner thread: %w", err)
			return
		}
	}
	if kind.defaultSeccomp {
		if err := shim.LoadSeccomp(filter); err != nil {
			ready <- fmt.Errorf("seccomp filter on the spawner thread: %w", err)
			return
		}
	}
	home, err := threadGroups()
	if err != nil {
		ready <- err
		return
	}
	s.tid = unix.Gettid()
	ready <- nil
	for req := range s.reqs {
		pid, err, atHome := s.spawn(req, home)
		req.reply <- spawnReply{pid: pid, err: err}
		if !atHome {
			return
		}
	}
}

// spawn joins the component's v1 groups, forks and execs, and goes back.
// atHome is false when the thread could not go back to its own groups:
// it must not be used again.
func (s *spawner) spawn(req spawnRequest, home map[string]string) (pid int, err error, atHome bool) {
	back := make([]string, 0, len(req.tasks))
	for _, t := range req.tasks {
		h, ok := homeTasks(t, req.group, home)
		if !ok {
			return 0, fmt.Errorf("%w: %s", errNoWayBack, t), true
		}
		back = append(back, h)
	}
	goHome := func() bool {
		for _, h := range back {
			if err := shim.JoinThread(h); err != nil {
				s.fail(fmt.Errorf("spawner thread cannot go back to %s: %w", h, err))
				return false
			}
		}
		return true
	}
	for i, t := range req.tasks {
		if err := shim.JoinThread(t); err != nil {
			back = back[:i]
			return 0, fmt.Errorf("join cgroup %s: %w", t, err), goHome()
		}
	}
	pid, err = syscall.ForkExec(req.path, req.argv, req.attr)
	return pid, err, goHome()
}

// threadGroups reads the calling thread's v1 groups: controller name →
// path inside its hierarchy ("name=systemd" as "systemd").
func threadGroups() (map[string]string, error) {
	f, err := os.Open("/proc/thread-self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue // the v2 line ("0::/path")
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[strings.TrimPrefix(c, "name=")] = parts[2]
		}
	}
	return out, sc.Err()
}

// homeTasks is the "tasks" file of the spawner's own group in the
// hierarchy that holds tasks, the component's file there (group is the
// component's cgroup path, the same in every hierarchy). The hierarchy is
// told by its mount's name, as the host mounts it (/sys/fs/cgroup/memory,
// …/cpu, a link to …/cpu,cpuacct).
func homeTasks(tasks, group string, home map[string]string) (string, bool) {
	mount, ok := strings.CutSuffix(tasks, "/"+strings.Trim(group, "/")+"/tasks")
	if !ok {
		return "", false
	}
	for _, c := range strings.Split(filepath.Base(mount), ",") {
		if p, ok := home[c]; ok {
			return filepath.Join(mount, p, "tasks"), true
		}
	}
	return "", false
}

// canStartDirect reports whether spec asks for nothing a direct start
// cannot give it: no filter but the default one, no open_files limit, no
// stdin or stdout of the caller's (a plugin run), root only where
// allowed, and a host that starts processes right into their v2 group.
func (r *Runner) canStartDirect(spec ProcessSpec, acct *Account) bool {
	if r.noDirect.Load() || r.noCloneInto.Load() {
		return false
	}
	switch spec.Seccomp {
	case "", SeccompUnconfined, SeccompDefault:
	default:
		return false
	}
	if spec.OpenFiles != 0 || spec.Stdin != nil || spec.Stdout != nil || spec.Stderr != nil {
		return false
	}
	if spec.AllowRoot {
		return true
	}
	if acct == nil {
		return os.Geteuid() != 0
	}
	return acct.UID != 0
}

// startDirect starts spec's program without the shim (see canStartDirect)
// in group, whose v1 part must exist, and returns the running process.
func (r *Runner) startDirect(spec ProcessSpec, acct *Account, lg *logs.Log, group *cgroup.Group, filter []unix.SockFilter) (*Process, error) {
	s, err := spawnerFor(spawnerKind{noNewPrivs: spec.NoNewPrivileges, defaultSeccomp: len(filter) > 0}, filter)
	if err != nil {
		r.noDirect.Store(true)
		r.log.Info("starting processes without the shim is not possible here; using the shim", "err", err)
		return nil, err
	}
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			_ = f.Close()
		}
	}
	defer closeAll()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	opened = append(opened, devNull)
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	opened = append(opened, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outR.Close()
		return nil, err
	}
	opened = append(opened, errW)
	sys := &syscall.SysProcAttr{Setpgid: true}
	dir, err := group.OpenV2Dir()
	if err != nil {
		_, _ = outR.Close(), errR.Close()
		return nil, err
	}
	if dir != nil {
		opened = append(opened, dir)
		sys.UseCgroupFD, sys.CgroupFD = true, int(dir.Fd())
	}
	if acct != nil {
		sys.Credential = &syscall.Credential{Uid: acct.UID, Gid: acct.GID, Groups: []uint32{}}
	}
	path, argv := spec.argv()
	attr := &syscall.ProcAttr{Dir: cmp.Or(spec.Dir, "/"), Env: spec.environ(acct), Files: []uintptr{devNull.Fd(), outW.Fd(), errW.Fd()}, Sys: sys}
	pid, err := s.forkExec(spawnRequest{path: path, argv: argv, attr: attr, tasks: group.V1TaskFiles(), group: group.Path()})
	if err != nil {
		_, _ = outR.Close(), errR.Close()
		if errors.Is(err, errSpawnerGone) || errors.Is(err, errNoWayBack) {
			// Not this program's fault: no direct start will work here.
			r.noDirect.Store(true)
			r.log.Info("starting processes without the shim is not possible here; using the shim", "err", err)
		}
		return nil, err
	}
	r.live.Add(1)
	ticks, err := ProcStartTicks(pid)
	if err != nil {
		// It was just started and is not reaped: it can only be a zombie
		// or running, and /proc has it either way. Do not leave it.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_, _ = unix.Wait4(pid, nil, 0, nil)
		_, _ = outR.Close(), errR.Close()
		r.live.Add(-1)
		return nil, err
	}
	p, err := r.track(spec, acct, lg, group, nil, pid, ticks, outR, errR)
	if err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_, _ = unix.Wait4(pid, nil, 0, nil)
		r.live.Add(-1)
		return nil, err
	}
	return p, nil
}
