// Package cgroup puts one component's processes into a control group of its
// own, applies its resource limits (cpu_quota, memory_limit, pids_limit), and
// later tells how it ended (OOM kills), what it used (CPU time), and kills and
// removes the group.
//
// It speaks to the kernel through containerd/cgroups/v3 and picks the layout
// from the host's mode:
//
//   - unified (v2 only): one v2 group carries the limits, the tracking and
//     the kill (cgroup.kill);
//   - hybrid (v1 controllers plus the v2 "unified" mount, the layout of this
//     build machine): v1 groups in the cpu, cpuacct, memory and pids
//     hierarchies carry the limits, and a controller-less v2 group tracks
//     the processes and kills them all at once;
//   - legacy (v1 only): v1 groups do everything; the kill signals every
//     process listed in the group until none is left.
//
// Every group lives at <root>/<name> in each hierarchy, root being
// configurable so that tests and several agents never collide.
//
// A limit the host cannot enforce is not an error: Create returns it as an
// Unapplied value so that the caller can say so loudly, and the component
// still runs. The package starts no process, sends no signal other than the
// final SIGKILL of Kill, and never waits for (reaps) a process: the owner of
// a process is the only one that may reap it.
package cgroup
