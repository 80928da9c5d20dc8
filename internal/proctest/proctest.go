// Package proctest reads /proc for tests that check real processes: whether
// a pid is alive, which processes belong to a component, how much CPU a
// process used. It is for tests only and makes no decision.
package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Alive reports whether pid is a live (not zombie) process.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// Marked maps each component to the live pids that are its own: their
// environment carries KS_MARK=<token>:<component>, or they are in the
// component's cgroup under root (which also covers the instant of an exec,
// when the environment cannot be read).
func Marked(token, root string) (map[string][]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[string][]int{}
	prefix := "KS_MARK=" + token + ":"
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !Alive(pid) {
			continue
		}
		if name := mark(pid, prefix, root); name != "" {
			out[name] = append(out[name], pid)
		}
	}
	return out, nil
}

func mark(pid int, prefix, root string) string {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	if b, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		for _, kv := range strings.Split(string(b), "\x00") {
			if name, ok := strings.CutPrefix(kv, prefix); ok {
				return name
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			_, path, _ := strings.Cut(line, "::")
			if name, ok := strings.CutPrefix(path, root+"/"); ok && !strings.Contains(name, "/") {
				return name
			}
		}
	}
	return ""
}

// CPUSeconds sums utime+stime of pids (clock ticks of 10 ms); a pid that
// is gone counts 0.
func CPUSeconds(pids ...int) float64 {
	var ticks uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		u, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		ticks += u + st
	}
	return float64(ticks) / 100
}
