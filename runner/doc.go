// Package runner starts and stops component processes: exec of a command
// (no shell) or a /bin/sh -c script with exactly the environment asked for,
// in its own process group and cgroup, as the run_as user with its
// supplementary groups cleared, with no_new_privs and the open_files rlimit
// set in the process itself, its stdout and stderr going to the
// component's log (package runner/logs), its cgroup limits applied by
// package runner/cgroup. A metrics plugin run is the same kind of process
// with its stdin fed and its stdout taken by the caller (ProcessSpec.Stdin,
// Stdout, Stderr): there is one exec path, with one set of confinements.
//
// A Runner starts a process and returns a *Process handle; the handle
// tells when and how the process ended (Done, Wait, ExitStatus with the
// OOM kill as a reason), signals it, measures it (Stats) and stops it
// (Stop: shutdown script, stop signal to the group, SIGKILL to the group
// and the cgroup after the timeout). When the main process exits, for
// whatever reason, everything else in its process group and cgroup is
// killed and waited for and the cgroup removed before Done is closed: no
// grandchild survives its component and the runner leaves no zombie.
//
// A process starts one of two ways, with the same confinements. Where the
// spec allows it (no seccomp profile file, no open_files limit, no stdin of
// the caller's) it is forked from a spawner thread of the agent's (see
// spawn.go) and execs its program at once: the fork itself takes the
// process group, the credentials, the working directory and the v2 group
// (clone-into-cgroup); no_new_privs and the default seccomp filter come
// from the spawner thread, which set them on itself and passes them on to
// what it forks; the v1 groups too, the thread joining them for the fork.
// Otherwise, and to say which step failed when a direct start fails, the
// new process is a shim between fork and exec (package runner/shim):
// the program keystone-shim (cmd/keystone-shim, ShimName) when it lies next
// to the running executable and is executable, else the agent's own
// executable re-run as the shim (IsShim, ShimMain; /proc/self/exe);
// Config.ShimPath names another. The shim is born in the component's v2
// group and waits for its request; then its exec thread joins the v1
// groups (cgroup v1 cannot clone into a group), and the shim applies the
// rlimit, the credentials, no_new_privs and the seccomp filter and execs
// the target; a failure there comes back as a *SetupError, never as an
// exit status of the component. A Go runtime starting in the shim is most
// of a restart's time, which is what the direct start spares.
//
// Output and exits are watched by one goroutine per Runner, the poller,
// not by goroutines per process: an epoll instance holds every process's
// stdout and stderr pipes and its pidfd, and the goroutine waits for it in
// the Go runtime's poller, so no OS thread is blocked. It reads at most
// 32 KiB from a pipe per wake-up, so that a chatty component is read in
// turn with the others; it cuts lines as logs.Log.Capture does
// (logs.Splitter), holding a buffer only for a partial line; a slow log
// write holds every reading up and the pipes fill, but no line is lost.
// An exit is handed to a short-lived goroutine for the clean-up above,
// which reads the output still coming for up to a second
// (drainTimeout) before it ends the reading. The poller runs while it
// watches something and ends with the last process, so a Runner needs no
// Close. A plugin run's output goes to writers of the caller, which may
// block, and has two goroutines of its own instead.
//
// After an agent crash, StopOrphan finds the processes of a stored Record
// (pid, start ticks, process group, cgroup) and stops them. It does not
// adopt them, by decision: their stdout and stderr pipes ended with the old
// agent, so an adopted process could no longer be logged, would die of
// SIGPIPE at its next write, and could not be waited for (it is not our
// child); stopping it and starting it afresh gives one well-defined
// process, never two. A start checks that the component's cgroup is empty,
// so a leftover can never run beside a new copy; SweepLeftovers, at agent
// start, empties every group under the cgroup root, which finds what an
// agent started but died before recording.
//
// A re-execution of the agent in place is different: the process keeps its
// pid, so the components are still its children, and Process.HandOver
// stops reading their output pipes (a partial line goes to the log as a
// line) and leaves them open across the exec. The next image adopts them
// (Runner.Adopt: still our child, same start time), reads on from the
// same pipes and reaps them with wait4; the sweep is told to leave their
// groups alone.
//
// The package knows nothing of deployments, dependencies, restart policy
// or health checks: the supervisor decides when to start and stop, and
// turns Warnings (limits the host cannot enforce) into events. It keeps no
// table of processes (the poller knows the processes it watches, until
// their end, only to tell whose pipe is ready) and no global state but
// the spawner threads, which belong to the process; secrets passed in a
// ProcessSpec reach only the process's environment, never a log or an
// error.
package runner
