package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/supervisor"
	"golang.org/x/sys/unix"
)

// HandOverEnv names the environment variable through which an agent tells
// the next image of its process where the hand-over file is.
const HandOverEnv = "KEYSTONE_HANDOVER"

// handOverFile is the hand-over's name in the data folder.
const handOverFile = "handover.json"

// HandOver is an agent that stopped to hand its running components to the
// next image of its own process: an execve in place, the way systemd's
// daemon-reexec works. The process keeps its pid, so components stay its
// children and the service manager's main pid stays right; the output
// pipes cross the exec as open descriptors. Run returns it as its error;
// the caller calls Exec.
type HandOver struct {
	// Target is the executable to become.
	Target string
	// Reason says why, for the log and the next image: "reload", or the
	// self-update step.
	Reason string
	// Components are what the supervisor froze.
	Components []supervisor.Frozen
	dataDir    string
}

func (h *HandOver) Error() string {
	return fmt.Sprintf("handing over %d components to %s (%s)", len(h.Components), h.Target, h.Reason)
}

// handOverState is the file the next image reads.
type handOverState struct {
	PID        int               `json:"pid"` // the process it is meant for
	From       string            `json:"from"`
	Target     string            `json:"target"`
	Reason     string            `json:"reason"`
	ExecFailed string            `json:"exec_failed,omitempty"` // Target could not be exec'd: why
	WrittenAt  time.Time         `json:"written_at"`
	Components []handedComponent `json:"components"`
}

type handedComponent struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	State      string `json:"state"`
	Restarts   int    `json:"restarts"`
	PID        int    `json:"pid,omitempty"`
	StartTicks uint64 `json:"start_ticks,omitempty"`
	PGID       int    `json:"pgid,omitempty"`
	Cgroup     string `json:"cgroup,omitempty"`
	Stdout     int    `json:"stdout_fd,omitempty"`
	Stderr     int    `json:"stderr_fd,omitempty"`
}

// Exec writes the hand-over file and execs Target with args and env (plus
// HandOverEnv). If that exec fails (not an executable, the wrong
// architecture), it execs this program's own image instead, telling it
// why, so that the components stay managed by the release that ran them.
// It returns only if both fail; the caller then exits, and what starts the
// agent again finds the components as leftovers of a crash.
func (h *HandOver) Exec(args, env []string) error {
	from, _ := os.Executable()
	st := handOverState{PID: os.Getpid(), From: from, Target: h.Target, Reason: h.Reason, WrittenAt: time.Now().UTC()}
	for _, f := range h.Components {
		c := handedComponent{Name: f.Name, Version: f.Version, State: f.State.String(), Restarts: f.Restarts}
		if p := f.Process; p != nil {
			c.PID, c.StartTicks, c.PGID, c.Cgroup, c.Stdout, c.Stderr = p.PID, p.StartTicks, p.PGID, p.CgroupPath, p.Stdout, p.Stderr
			// Open across the exec (those passed on unadopted had it set).
			_, _ = unix.FcntlInt(uintptr(p.Stdout), unix.F_SETFD, 0)
			_, _ = unix.FcntlInt(uintptr(p.Stderr), unix.F_SETFD, 0)
		}
		st.Components = append(st.Components, c)
	}
	path := filepath.Join(h.dataDir, handOverFile)
	env = append(withoutEnv(env, HandOverEnv), HandOverEnv+"="+path)
	if err := writeJSONFile(path, st); err != nil {
		return fmt.Errorf("hand over: %w", err)
	}
	argv := append([]string{h.Target}, args...)
	err := syscall.Exec(h.Target, argv, env)
	// Still here: the target could not become this process. Stay with the
	// running image, which the components' state was frozen by.
	st.ExecFailed = fmt.Sprintf("exec %s: %v", h.Target, err)
	if werr := writeJSONFile(path, st); werr != nil {
		return errors.Join(err, werr)
	}
	self := "/proc/self/exe" // the running image, even if its file was replaced
	argv[0] = from
	return errors.Join(err, syscall.Exec(self, argv, env))
}

func withoutEnv(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if len(kv) > len(name) && kv[:len(name)+1] == name+"=" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// HandedOver is what the previous image of this process handed over.
type HandedOver struct {
	// From is the executable that handed over; Target the one meant to
	// take over (this one, unless ExecFailed).
	From, Target, Reason string
	// ExecFailed says why Target could not be exec'd; the previous image
	// then took its components back itself.
	ExecFailed string
	// Takeover is for supervisor.Config.Takeover.
	Takeover map[string]supervisor.Takeover
	// WrittenAt is when the previous image wrote the hand-over, right
	// before its exec.
	WrittenAt time.Time
}

// TakeHandOver reads the hand-over the previous image of this process left
// (named by HandOverEnv), removes the file and unsets the variable, so
// that nothing is taken over twice. It returns nil when there is none, or
// when the file was meant for another process (a stale one, left by an
// agent that crashed: its components are then leftovers, stopped at
// start). Descriptors it names are taken only after the pid check.
func TakeHandOver() (*HandedOver, error) {
	path := os.Getenv(HandOverEnv)
	if path == "" {
		return nil, nil
	}
	_ = os.Unsetenv(HandOverEnv)
	b, err := os.ReadFile(path)
	_ = os.Remove(path)
	if err != nil {
		return nil, fmt.Errorf("read the hand-over: %w", err)
	}
	var st handOverState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read the hand-over %s: %w", path, err)
	}
	if st.PID != os.Getpid() {
		return nil, nil
	}
	h := &HandedOver{From: st.From, Target: st.Target, Reason: st.Reason, ExecFailed: st.ExecFailed,
		Takeover: map[string]supervisor.Takeover{}, WrittenAt: st.WrittenAt}
	for _, c := range st.Components {
		t := supervisor.Takeover{Version: c.Version, Restarts: c.Restarts}
		if c.PID > 0 {
			if !fdOpen(c.Stdout) || !fdOpen(c.Stderr) {
				return nil, fmt.Errorf("hand-over of %s: descriptors %d and %d are not open", c.Name, c.Stdout, c.Stderr)
			}
			t.Process = &runner.HandOver{
				Record: runner.Record{Component: c.Name, PID: c.PID, StartTicks: c.StartTicks, PGID: c.PGID, CgroupPath: c.Cgroup},
				Stdout: c.Stdout, Stderr: c.Stderr,
			}
			unix.CloseOnExec(c.Stdout) // until adopted, never leaked into a child
			unix.CloseOnExec(c.Stderr)
		}
		h.Takeover[c.Name] = t
	}
	return h, nil
}

func fdOpen(fd int) bool {
	if fd < 3 {
		return false
	}
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// String describes the hand-over for the log.
func (h *HandedOver) String() string {
	n := 0
	for _, t := range h.Takeover {
		if t.Process != nil {
			n++
		}
	}
	return strconv.Itoa(n) + " running processes from " + h.From + " (" + h.Reason + ")"
}
