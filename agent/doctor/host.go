package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// controllers are the cgroup controllers the agent's resource limits need:
// cpu_quota, memory_limit and pids_limit.
var controllers = []string{"cpu", "memory", "pids"}

// cgroups checks the cgroup layout and that the controllers are there for
// the agent to use.
func (d *run) cgroups() {
	if !d.env.Host {
		d.add("cgroups", Skip, "the root folder is not this running system; checked on the device", "")
		return
	}
	fsRoot := d.env.CgroupFS
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(fsRoot, p)); return err == nil }
	const fix = "run the agent where cgroups are mounted with the cpu, memory and pids controllers " +
		"(under systemd: the shipped unit's Delegate=yes; in a container: give it its own cgroup namespace with the controllers enabled)"
	switch {
	case exists("cgroup.controllers"): // v2 only
		data, err := os.ReadFile(filepath.Join(fsRoot, "cgroup.controllers"))
		if err != nil {
			d.add("cgroups", Fail, err.Error(), fix)
			return
		}
		have := strings.Fields(string(data))
		var missing []string
		for _, c := range controllers {
			if !slices.Contains(have, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			d.add("cgroups", Fail, fmt.Sprintf("cgroup v2 at %s: the %s controller(s) are not delegated here (available: %s): "+
				"the limits that need them (cpu_quota, memory_limit, pids_limit) cannot be enforced",
				fsRoot, strings.Join(missing, ", "), orNone(have)), fix)
			return
		}
		d.add("cgroups", OK, fmt.Sprintf("cgroup v2 at %s with %s", fsRoot, strings.Join(controllers, ", ")), "")
	default: // hybrid or legacy: one v1 hierarchy per controller
		var missing []string
		for _, c := range controllers {
			if !exists(filepath.Join(c, "cgroup.procs")) {
				missing = append(missing, c)
			}
		}
		mode := "v1 (legacy)"
		if exists(filepath.Join("unified", "cgroup.procs")) {
			mode = "hybrid (v1 controllers, v2 at unified/)"
		}
		switch {
		case len(missing) == len(controllers) && mode == "v1 (legacy)":
			d.add("cgroups", Fail, "no cgroup file system at "+fsRoot+": components run without limits or tracking", fix)
		case len(missing) > 0:
			d.add("cgroups", Fail, fmt.Sprintf("cgroup %s at %s: no %s hierarchy: the limits that need them cannot be enforced",
				mode, fsRoot, strings.Join(missing, ", ")), fix)
		default:
			d.add("cgroups", OK, fmt.Sprintf("cgroup %s at %s with %s", mode, fsRoot, strings.Join(controllers, ", ")), "")
		}
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// unit is the agent's systemd unit.
const unit = "keystone-agent.service"

// systemd checks the agent's unit: running and enabled.
func (d *run) systemd(ctx context.Context) {
	if !d.env.Host {
		d.add("systemd", Skip, "the root folder is not this running system; checked on the device", "")
		return
	}
	run := d.env.Systemctl
	if run == nil {
		path, err := d.env.LookPath("systemctl")
		if err != nil {
			d.add("systemd", Warn, "systemctl not found: the state of "+unit+" cannot be checked (not a systemd system?)",
				"make sure whatever starts the agent here restarts it when it exits")
			return
		}
		run = func(ctx context.Context, args ...string) (string, error) {
			out, err := exec.CommandContext(ctx, path, args...).Output()
			return strings.TrimSpace(string(out)), err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.env.Timeout)
	defer cancel()
	active, err := run(ctx, "is-active", unit)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		d.add("systemd", Warn, "systemctl: "+err.Error(), "check the unit by hand: systemctl status "+unit)
		return
	}
	enabled, _ := run(ctx, "is-enabled", unit)
	switch {
	case active != "active":
		d.add("systemd", Fail, fmt.Sprintf("%s is %s", unit, orUnknown(active)),
			"systemctl enable --now "+unit+"; if it fails: journalctl -u "+unit)
	case enabled != "enabled":
		d.add("systemd", Warn, fmt.Sprintf("%s is active but %s: it will not start at boot", unit, orUnknown(enabled)),
			"systemctl enable "+unit)
	default:
		d.add("systemd", OK, unit+" is active and enabled", "")
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
