package runner

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/runner/cgroup"
)

// sweepRounds bounds how often a sweep looks again for processes forked
// while it was killing; a pids_limit or cgroup.kill ends a fork race long
// before that.
const sweepRounds = 20

// targets are the processes that make up a component: its process group
// (pgid > 0, members started at or after minTicks) and its cgroup (when
// tracked).
type targets struct {
	pgid     int
	minTicks uint64
	group    *cgroup.Group // nil = none
}

// members lists the live processes of the component.
func (t targets) members() ([]member, error) {
	var out []member
	seen := map[int]bool{}
	if t.pgid > 0 {
		ms, err := groupMembers(t.pgid, t.minTicks)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			seen[m.PID] = true
			out = append(out, m)
		}
	}
	if t.group != nil && t.group.Tracked() {
		pids, err := t.group.Procs()
		if err != nil {
			return nil, err
		}
		for _, m := range liveMembers(pids) {
			if !seen[m.PID] {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// open opens pidfds for the members that are still the processes found.
func open(ms []member) ([]pidfd, error) {
	var fds []pidfd
	for _, m := range ms {
		p, ok, err := openMember(m)
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		if ok {
			fds = append(fds, p)
		}
	}
	return fds, nil
}

func closeAll(fds []pidfd) {
	for _, p := range fds {
		p.close()
	}
}

// signalAll sends sig to every member once, and reports how many there were.
func (t targets) signalAll(sig syscall.Signal) ([]pidfd, error) {
	ms, err := t.members()
	if err != nil {
		return nil, err
	}
	fds, err := open(ms)
	if err != nil {
		return nil, err
	}
	for _, p := range fds {
		if err := p.signal(sig); err != nil {
			closeAll(fds)
			return nil, err
		}
	}
	return fds, nil
}

// killAll sends SIGKILL to every process of the component, again for any
// that appear meanwhile, and waits until all have exited, up to bound.
// It returns how many processes it killed.
func (t targets) killAll(bound time.Duration) (int, error) {
	deadline := time.Now().Add(bound)
	killed := map[int]bool{}
	for range sweepRounds {
		if t.group != nil && t.group.Tracked() {
			if err := t.group.Kill(); err != nil {
				return len(killed), err
			}
		}
		fds, err := t.signalAll(syscall.SIGKILL)
		if err != nil {
			return len(killed), err
		}
		if len(fds) == 0 {
			return len(killed), nil
		}
		for _, p := range fds {
			killed[p.pid] = true
		}
		left, err := waitExited(fds, deadline)
		closeAll(fds)
		if err != nil {
			return len(killed), err
		}
		if len(left) > 0 {
			return len(killed), fmt.Errorf("%d processes still running %s after SIGKILL", len(left), bound)
		}
	}
	return len(killed), errors.New("processes kept appearing while killing them")
}
