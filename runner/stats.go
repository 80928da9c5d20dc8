package runner

import (
	"context"
	"fmt"

	"github.com/shirou/gopsutil/v4/process"
)

// Stats is what a component uses now.
type Stats struct {
	// CPUSeconds is user plus system CPU time. With a cgroup it counts
	// every process that ever ran in it and never goes down; without one
	// it is the sum over the live processes of the process group.
	CPUSeconds float64
	// RSSBytes is resident memory summed over the live processes (shared
	// pages count once per process).
	RSSBytes uint64
	// Processes is how many processes the component has.
	Processes int
}

// Stats measures the component: the processes of its cgroup, or of its
// process group when it has no cgroup. It returns ErrFinished once the
// process has exited.
func (p *Process) Stats(ctx context.Context) (Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return Stats{}, ErrFinished
	}
	var pids []int
	if p.group.Tracked() {
		var err error
		if pids, err = p.group.Procs(); err != nil {
			return Stats{}, fmt.Errorf("stats of %s: %w", p.spec.Component, err)
		}
	} else {
		ms, err := groupMembers(p.pid, p.ticks)
		if err != nil {
			return Stats{}, fmt.Errorf("stats of %s: %w", p.spec.Component, err)
		}
		for _, m := range ms {
			pids = append(pids, m.PID)
		}
	}
	cgCPU, cgErr := p.group.CPUSeconds()
	var st Stats
	for _, pid := range pids {
		proc, err := process.NewProcessWithContext(ctx, int32(pid))
		if err != nil {
			continue // gone meanwhile
		}
		mem, err := proc.MemoryInfoWithContext(ctx)
		if err != nil {
			continue
		}
		st.Processes++
		st.RSSBytes += mem.RSS
		if cgErr != nil {
			if t, err := proc.TimesWithContext(ctx); err == nil {
				st.CPUSeconds += t.User + t.System
			}
		}
	}
	if cgErr == nil {
		st.CPUSeconds = cgCPU
	}
	return st, nil
}
