package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// proc is a process found in /proc.
type proc struct {
	pid  int
	args []string
	env  []string
}

// processes lists the live processes that have an argument starting with
// prefix (the components' --marker values), read from /proc. Zombies and
// processes that vanish while being read are left out.
func processes(prefix string) []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || len(cmdline) == 0 { // gone, or a zombie
			continue
		}
		args := splitNUL(cmdline)
		found := false
		for _, a := range args {
			if strings.HasPrefix(a, prefix) {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join(dir, "environ"))
		out = append(out, proc{pid: pid, args: args, env: splitNUL(environ)})
	}
	return out
}

// componentProcs lists the processes of one component of the device.
func (d *device) componentProcs(name string) []proc {
	return processes(d.marker(name))
}

// markerPrefix starts every marker of this device's components.
func (d *device) markerPrefix() string { return "e2e-marker-" + d.tag + "-" }

// marker labels the processes of component name (svc --marker).
func (d *device) marker(name string) string { return d.markerPrefix() + name + "." }

func splitNUL(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// hasArgs reports whether args holds want as consecutive arguments.
func hasArgs(args []string, want ...string) bool {
	for i := 0; i+len(want) <= len(args); i++ {
		match := true
		for j, w := range want {
			if args[i+j] != w {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// envValue returns the value of key in env ("KEY=value" entries).
func envValue(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
