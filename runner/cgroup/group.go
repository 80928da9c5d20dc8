package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Group is one component's control group, present in one or more
// hierarchies. The zero Group (from a host without cgroups) tracks nothing:
// its methods do nothing and report nothing. A Group is not safe for
// concurrent use; its owner (the process handle) serialises calls.
type Group struct {
	path   string
	v1     map[cgroup1.Name]cgroup1.Cgroup
	v1Dirs map[cgroup1.Name]string // the group's directory in each v1 hierarchy
	v2     *cgroup2.Manager
	v2Dir  string
}

// Path is the group's cgroup path (the same in every hierarchy), for the
// record an agent restart reads back; "" when the group tracks nothing.
func (g *Group) Path() string {
	if !g.Tracked() {
		return ""
	}
	return g.path
}

// Tracked reports whether the group exists in at least one hierarchy, so
// that Procs and Kill reach every process of the component.
func (g *Group) Tracked() bool { return g.v2 != nil || len(g.v1) > 0 }

// Add moves the process pid into the group in every hierarchy.
func (g *Group) Add(pid int) error {
	if g.v2 != nil {
		if err := g.v2.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("add pid %d to cgroup %s: %w", pid, g.v2Dir, err)
		}
	}
	for _, name := range v1Controllers {
		if cg, ok := g.v1[name]; ok {
			if err := cg.AddProc(uint64(pid)); err != nil {
				return fmt.Errorf("add pid %d to cgroup %s (%s): %w", pid, g.path, name, err)
			}
		}
	}
	return nil
}

// AddV2 moves the process pid into the group's v2 part only, if it has
// one: for a process that joins the v1 groups itself (see V1TaskFiles).
func (g *Group) AddV2(pid int) error {
	if g.v2 == nil {
		return nil
	}
	if err := g.v2.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("add pid %d to cgroup %s: %w", pid, g.v2Dir, err)
	}
	return nil
}

// V1TaskFiles lists the group's "tasks" file in each v1 hierarchy. A
// thread that writes "0" there joins the group by itself, without taking
// the kernel's global lock for moving whole processes (whose write side
// waits for an RCU grace period); a thread that then execs takes the
// membership to the new program, the process's other threads ending with
// the exec.
func (g *Group) V1TaskFiles() []string {
	var out []string
	for _, name := range v1Controllers {
		if d, ok := g.v1Dirs[name]; ok {
			out = append(out, filepath.Join(d, "tasks"))
		}
	}
	return out
}

// OpenV2Dir opens the group's v2 directory, for starting a process right
// in it (clone-into-cgroup: syscall.SysProcAttr.CgroupFD), which spares
// moving it there afterwards; nil without error when the group has no v2
// part. The caller closes it.
func (g *Group) OpenV2Dir() (*os.File, error) {
	if g.v2 == nil {
		return nil, nil
	}
	f, err := os.OpenFile(g.v2Dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", g.v2Dir, err)
	}
	return f, nil
}

// Procs lists the processes in the group, including nested groups. It
// reads cgroup.procs of the group and of each group below it, nothing else.
func (g *Group) Procs() ([]int, error) {
	dir := g.v2Dir
	if g.v2 == nil {
		name, cg := g.trackingV1()
		if cg == nil {
			return nil, nil
		}
		dir = g.v1Dirs[name]
	}
	out, err := readProcsTree(dir)
	if err != nil {
		return nil, fmt.Errorf("list cgroup %s: %w", dir, err)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// readProcsTree reads cgroup.procs in dir and every group below it; a
// group that is gone has no processes.
func readProcsTree(dir string) ([]int, error) {
	pids, err := readProcs(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return pids, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub, err := readProcsTree(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		pids = append(pids, sub...)
	}
	return pids, nil
}

// trackingV1 picks the v1 hierarchy whose member list is used: pids, then
// memory, then any.
func (g *Group) trackingV1() (cgroup1.Name, cgroup1.Cgroup) {
	for _, name := range []cgroup1.Name{cgroup1.Pids, cgroup1.Memory, cgroup1.Cpu, cgroup1.Cpuacct} {
		if cg, ok := g.v1[name]; ok {
			return name, cg
		}
	}
	return "", nil
}

// Kill sends SIGKILL to every process in the group. With a v2 group on a
// kernel that has cgroup.kill it is one atomic write that also catches
// processes being forked; otherwise each listed process is signalled, so a
// caller that must see the group empty calls Kill again until Procs is
// empty. Kill does not wait: processes leave the group as they exit.
func (g *Group) Kill() error {
	if g.v2 != nil {
		err := os.WriteFile(filepath.Join(g.v2Dir, "cgroup.kill"), []byte("1"), 0)
		if err == nil || errors.Is(err, fs.ErrNotExist) && !isDir(g.v2Dir) {
			return nil
		}
	}
	pids, err := g.Procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill pid %d of cgroup %s: %w", pid, g.path, err)
		}
	}
	return nil
}

// OOMKills is how many processes of the group the kernel's OOM killer has
// killed since the group was created; 0 without a memory controller. It
// reads the one counter (v1 memory.oom_control, v2 memory.events), not
// the whole memory statistics: it is on the path from an exit to its
// restart.
func (g *Group) OOMKills() (uint64, error) {
	if _, ok := g.v1[cgroup1.Memory]; ok {
		return readKey(filepath.Join(g.v1Dirs[cgroup1.Memory], "memory.oom_control"), "oom_kill")
	}
	if g.v2 != nil {
		return readKey(filepath.Join(g.v2Dir, "memory.events"), "oom_kill")
	}
	return 0, nil
}

// CPUSeconds is the CPU time (user and system) used by every process that
// ever ran in the group. The error wraps ErrUnavailable when the group has
// no CPU accounting.
func (g *Group) CPUSeconds() (float64, error) {
	if stat := filepath.Join(g.v2Dir, "cpu.stat"); g.v2 != nil && fileExists(stat) {
		usec, err := readKey(stat, "usage_usec")
		if err != nil {
			return 0, err
		}
		return float64(usec) / 1e6, nil
	}
	if cg, ok := g.v1[cgroup1.Cpuacct]; ok {
		st, err := cg.Stat(cgroup1.IgnoreNotExist)
		if err != nil {
			return 0, fmt.Errorf("read CPU time of cgroup %s: %w", g.path, err)
		}
		if st.CPU != nil && st.CPU.Usage != nil {
			return float64(st.CPU.Usage.Total) / 1e9, nil
		}
	}
	return 0, fmt.Errorf("CPU time of cgroup %q: %w", g.path, ErrUnavailable)
}

// Delete removes the group from every hierarchy. It fails while processes
// are left (Kill them and wait first); deleting a deleted group is a no-op.
// It is one rmdir per hierarchy (the kernel refuses a group that still
// has processes), since it is on the path from an exit to its restart.
func (g *Group) Delete() error {
	var errs []error
	for _, name := range v1Controllers {
		if _, ok := g.v1[name]; !ok {
			continue
		}
		if err := removeGroupDir(g.v1Dirs[name]); err != nil {
			errs = append(errs, fmt.Errorf("delete cgroup %s (%s): %w", g.path, name, err))
			continue
		}
		delete(g.v1, name)
	}
	if g.v2 != nil {
		if err := removeGroupDir(g.v2Dir); err != nil {
			errs = append(errs, fmt.Errorf("delete cgroup %s: %w", g.v2Dir, err))
		} else {
			g.v2 = nil
		}
	}
	return errors.Join(errs...)
}

// removeGroupDir removes one group directory; a missing one is gone
// already. EBUSY right after the last process exited can be the kernel
// still finishing that exit: it is tried again a few times over about
// 100 ms while the group lists no process.
func removeGroupDir(dir string) error {
	delay := time.Millisecond
	for try := 0; ; try++ {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || try == 7 {
			return err
		}
		if pids, perr := readProcs(dir); perr != nil || len(pids) > 0 {
			return fmt.Errorf("%w (processes %v)", err, pids)
		}
		<-time.After(delay)
		delay *= 2
	}
}

// createV1 makes the group in each v1 hierarchy it uses, each with its own
// part of the limits, so that one failing controller costs only its limit.
func (g *Group) createV1(subs map[cgroup1.Name]cgroup1.Subsystem, lim Limits) []Unapplied {
	var unapplied []Unapplied
	for _, name := range v1Controllers {
		res, limit := v1Resources(name, lim, subs[name])
		s, ok := subs[name]
		if !ok {
			if limit != "" {
				unapplied = append(unapplied, Unapplied{Limit: limit, Value: lim.value(limit),
					Err: fmt.Errorf("%w: no cgroup v1 %s hierarchy", ErrUnavailable, name)})
			}
			continue
		}
		cg, err := cgroup1.New(cgroup1.StaticPath(g.path), res, cgroup1.WithHierarchy(single(s)))
		if err != nil {
			_ = os.Remove(filepath.Join(subsystemRoot(s), g.path))
			if limit != "" {
				unapplied = append(unapplied, Unapplied{Limit: limit, Value: lim.value(limit),
					Err: fmt.Errorf("cgroup v1 %s: %w", name, err)})
			}
			continue
		}
		g.v1[name], g.v1Dirs[name] = cg, filepath.Join(subsystemRoot(s), g.path)
	}
	return unapplied
}

// v1Resources is the part of lim that the v1 controller name enforces, and
// the limit's name ("" when it enforces none of them).
func v1Resources(name cgroup1.Name, lim Limits, s cgroup1.Subsystem) (*specs.LinuxResources, string) {
	res := &specs.LinuxResources{}
	switch name {
	case cgroup1.Cpu:
		if lim.CPUQuotaPercent > 0 {
			quota, period := int64(lim.CPUQuotaPercent)*cpuPeriodMicros/100, uint64(cpuPeriodMicros)
			res.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
			return res, LimitCPUQuota
		}
	case cgroup1.Memory:
		if lim.MemoryBytes > 0 {
			limit := lim.MemoryBytes
			res.Memory = &specs.LinuxMemory{Limit: &limit}
			if s != nil {
				if _, err := os.Stat(filepath.Join(subsystemRoot(s), "memory.memsw.limit_in_bytes")); err == nil {
					swap := limit // memory+swap = memory: no swapping around the limit
					res.Memory.Swap = &swap
				}
			}
			return res, LimitMemory
		}
	case cgroup1.Pids:
		if lim.Pids > 0 {
			n := lim.Pids
			res.Pids = &specs.LinuxPids{Limit: &n}
			return res, LimitPids
		}
	}
	return res, ""
}

// createV2 makes the group in the v2 hierarchy at mount. With withLimits,
// each requested limit enables its controller and is written on its own.
func (g *Group) createV2(mount string, lim Limits, withLimits bool) ([]Unapplied, error) {
	mgr, err := cgroup2.NewManager(mount, g.path, &cgroup2.Resources{})
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s%s: %w", mount, g.path, err)
	}
	g.v2, g.v2Dir = mgr, filepath.Join(mount, g.path)
	if !withLimits {
		return nil, nil
	}
	var unapplied []Unapplied
	for _, limit := range lim.requested() {
		var (
			ctrl string
			res  cgroup2.Resources
		)
		switch limit {
		case LimitCPUQuota:
			quota, period := int64(lim.CPUQuotaPercent)*cpuPeriodMicros/100, uint64(cpuPeriodMicros)
			ctrl, res.CPU = "cpu", &cgroup2.CPU{Max: cgroup2.NewCPUMax(&quota, &period)}
		case LimitMemory:
			max := lim.MemoryBytes
			ctrl, res.Memory = "memory", &cgroup2.Memory{Max: &max}
		case LimitPids:
			ctrl, res.Pids = "pids", &cgroup2.Pids{Max: lim.Pids}
		}
		if err := mgr.ToggleControllers([]string{ctrl}, cgroup2.Enable); err != nil {
			unapplied = append(unapplied, Unapplied{Limit: limit, Value: lim.value(limit),
				Err: fmt.Errorf("%w: enable cgroup v2 %s controller: %v", ErrUnavailable, ctrl, err)})
			continue
		}
		if limit == LimitMemory {
			if _, err := os.Stat(filepath.Join(g.v2Dir, "memory.swap.max")); err == nil {
				zero := int64(0) // no swapping around the limit
				res.Memory.Swap = &zero
			}
		}
		if err := mgr.Update(&res); err != nil {
			unapplied = append(unapplied, Unapplied{Limit: limit, Value: lim.value(limit),
				Err: fmt.Errorf("cgroup v2 %s: %w", ctrl, err)})
		}
	}
	return unapplied, nil
}

// loadV2 attaches an existing v2 group at mount.
func (g *Group) loadV2(mount string) error {
	mgr, err := cgroup2.Load(g.path, cgroup2.WithMountpoint(mount))
	if err != nil {
		return fmt.Errorf("open cgroup %s%s: %w", mount, g.path, err)
	}
	g.v2, g.v2Dir = mgr, filepath.Join(mount, g.path)
	return nil
}

// readProcs reads dir/cgroup.procs; a missing group has no processes.
func readProcs(dir string) ([]int, error) {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			pids = append(pids, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return pids, nil
}

// readKey reads "key value" lines (memory.events, cpu.stat) and returns the
// value of key; a missing file or key reads as 0.
func readKey(file, key string) (uint64, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read %s: %s: %w", file, key, err)
			}
			return n, nil
		}
	}
	return 0, sc.Err()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
