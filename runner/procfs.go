package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// ErrNoProcess says a process is gone (or never existed).
var ErrNoProcess = errors.New("runner: no such process")

// procStat is what the runner reads from /proc/PID/stat.
type procStat struct {
	Comm       string // the executable's name, at most 15 bytes
	State      byte   // R, S, D, Z, T, ...
	PPID       int
	PGID       int
	StartTicks uint64 // field 22: start time in clock ticks after boot
}

// ProcStartTicks returns field 22 of /proc/PID/stat, the process's start
// time in clock ticks after boot. With the pid it names one process across
// pid reuse: a later process with the same pid has a later start time. The
// error wraps ErrNoProcess when there is no such process.
func ProcStartTicks(pid int) (uint64, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return st.StartTicks, nil
}

// readStat reads and parses /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	if pid <= 0 {
		return procStat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, ErrNoProcess)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errESRCH) {
		return procStat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return procStat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	st, err := parseStat(b)
	if err != nil {
		return procStat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// parseStat parses the text of /proc/PID/stat. The command name is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return procStat{}, errors.New("malformed stat: no command name")
	}
	rest := bytes.Fields(b[close+1:])
	// rest[0] is field 3 (state); field n is rest[n-3].
	if len(rest) < 20 || len(rest[0]) != 1 {
		return procStat{}, errors.New("malformed stat: too few fields")
	}
	st := procStat{Comm: string(b[open+1 : close]), State: rest[0][0]}
	var err error
	if st.PPID, err = strconv.Atoi(string(rest[1])); err != nil {
		return procStat{}, fmt.Errorf("malformed stat: ppid: %w", err)
	}
	if st.PGID, err = strconv.Atoi(string(rest[2])); err != nil {
		return procStat{}, fmt.Errorf("malformed stat: pgid: %w", err)
	}
	if st.StartTicks, err = strconv.ParseUint(string(rest[19]), 10, 64); err != nil {
		return procStat{}, fmt.Errorf("malformed stat: start time: %w", err)
	}
	return st, nil
}

// member is a live process found by a scan, with the start time it had when
// found.
type member struct {
	PID        int
	StartTicks uint64
}

// groupMembers lists the live (not zombie) processes of process group pgid
// that started at or after minTicks.
func groupMembers(pgid int, minTicks uint64) ([]member, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan /proc: %w", err)
	}
	var out []member
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if st.PGID == pgid && st.State != 'Z' && st.StartTicks >= minTicks {
			out = append(out, member{PID: pid, StartTicks: st.StartTicks})
		}
	}
	return out, nil
}

// liveMembers turns pids (from a cgroup) into members, skipping those gone
// or already dead.
func liveMembers(pids []int) []member {
	var out []member
	for _, pid := range pids {
		st, err := readStat(pid)
		if err == nil && st.State != 'Z' {
			out = append(out, member{PID: pid, StartTicks: st.StartTicks})
		}
	}
	return out
}
