package runner

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/keystone-edge/keystone/runner/shim"
)

// shimProc is a started shim waiting at its gate (reading its request),
// with the parent's ends of its pipes.
type shimProc struct {
	cmd   *exec.Cmd
	pid   int
	ticks uint64
	// clonedV2 is true when the shim was cloned straight into its group's
	// v2 directory (CLONE_INTO_CGROUP), so only the v1 groups remain to join.
	clonedV2 bool

	reqW  *os.File // the request goes here; closing it without one ends the shim
	failR *os.File // a failure report comes back here; EOF alone means exec'd
	outR  *os.File // its stdout
	errR  *os.File // its stderr
}

// startShim starts the shim in a process group of its own, its standard
// input from stdin (nil: /dev/null). label (the component) is only shown
// by ps. With cgroupDir set, the shim is cloned into that v2 group.
func (r *Runner) startShim(label string, stdin io.Reader, cgroupDir *os.File) (*shimProc, error) {
	var parent, child []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			_ = f.Close()
		}
	}
	for range 4 {
		rd, wr, err := os.Pipe()
		if err != nil {
			closeAll(parent)
			closeAll(child)
			return nil, err
		}
		parent, child = append(parent, rd, wr), append(child, rd, wr)
	}
	// Pipes: request (shim reads), failure (shim writes), stdout, stderr.
	reqR, reqW, failR, failW := parent[0], parent[1], parent[2], parent[3]
	outR, outW, errR, errW := parent[4], parent[5], parent[6], parent[7]
	attr := &syscall.SysProcAttr{Setpgid: true}
	if cgroupDir != nil {
		attr.UseCgroupFD, attr.CgroupFD = true, int(cgroupDir.Fd())
	}
	cmd := &exec.Cmd{
		Path:        r.shim,
		Args:        []string{r.shim, shim.Arg, label},
		Env:         []string{"GOMAXPROCS=1"}, // few threads: the shim may already be under pids_limit
		Dir:         "/",
		Stdin:       stdin,
		Stdout:      outW,
		Stderr:      errW,
		ExtraFiles:  []*os.File{reqR, failW}, // fds 3 and 4
		SysProcAttr: attr,
	}
	if err := cmd.Start(); err != nil {
		closeAll(parent)
		return nil, fmt.Errorf("run shim %s: %w", r.shim, err)
	}
	closeAll([]*os.File{reqR, failW, outW, errW}) // the child has its copies
	sp := &shimProc{cmd: cmd, pid: cmd.Process.Pid, clonedV2: cgroupDir != nil, reqW: reqW, failR: failR, outR: outR, errR: errR}
	ticks, err := ProcStartTicks(sp.pid)
	if err != nil {
		sp.discard()
		return nil, err
	}
	sp.ticks = ticks
	return sp, nil
}

// discard ends a shim that will not be used: without a request it exits at
// once (status 127); it is killed to be sure, and reaped.
func (s *shimProc) discard() {
	_ = s.reqW.Close()
	_ = syscall.Kill(-s.pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.closePipes()
}

func (s *shimProc) closePipes() {
	for _, f := range []*os.File{s.reqW, s.failR, s.outR, s.errR} {
		_ = f.Close()
	}
}
