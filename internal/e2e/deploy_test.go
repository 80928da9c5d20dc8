package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

// threeComponents is the set most tests start from: db serves a health
// check, app needs db (hard), ui starts after app (soft).
func threeComponents(d *device) []comp {
	return []comp{
		{short: "db", version: "1.0.0", port: d.freePort()},
		{short: "app", version: "1.0.0", hard: []string{"db"}, greeting: "first"},
		{short: "ui", version: "1.0.0", soft: []string{"app"}},
	}
}

// transitionAt is when component name last entered state to, from
// component get's transitions.
func transitionAt(t *testing.T, detail api.ComponentDetail, to string) time.Time {
	t.Helper()
	for i := len(detail.Transitions) - 1; i >= 0; i-- {
		if detail.Transitions[i].To == to {
			return detail.Transitions[i].At
		}
	}
	t.Fatalf("%s never entered %s; transitions: %+v", detail.Name, to, detail.Transitions)
	return time.Time{}
}

// detail is component get NAME -o json, once its transitions include one
// into state to (the agent records events as they happen, not before it
// answers a deployment).
func (d *device) detail(name, to string) api.ComponentDetail {
	d.t.Helper()
	var c api.ComponentDetail
	d.waitFor(name+" transition to "+to+" in component get", 10*time.Second, func() bool {
		d.ctlJSON(&c, "component", "get", name)
		return slices.ContainsFunc(c.Transitions, func(tr api.Transition) bool { return tr.To == to })
	})
	return c
}

// waitRunning waits until every component of want is RUNNING at its
// version (after an agent start, which restores the current set in the
// background), then checks them as requireRunning does. A component that
// turns BROKEN ends the wait early.
func (d *device) waitRunning(want ...comp) map[string]int {
	d.t.Helper()
	d.waitFor("the current set to be RUNNING", time.Minute, func() bool {
		got := d.components()
		running := true
		for _, c := range want {
			gc := got[d.name(c.short)]
			if gc.State == "BROKEN" {
				return true
			}
			running = running && gc.State == "RUNNING" && gc.Version == c.version
		}
		return running
	})
	return d.requireRunning(want...)
}

// requireRunning checks that exactly the components of want run, at their
// versions, each RUNNING with exactly one process whose pid the agent
// reports, and returns their pids by short name.
func (d *device) requireRunning(want ...comp) map[string]int {
	d.t.Helper()
	got := d.components()
	pids := map[string]int{}
	for _, c := range want {
		name := d.name(c.short)
		gc, ok := got[name]
		switch {
		case !ok:
			d.t.Errorf("%s is not in component list", name)
			continue
		case gc.State != "RUNNING" || gc.Version != c.version:
			d.t.Errorf("%s is %s at %s, want RUNNING at %s (last error %q)", name, gc.State, gc.Version, c.version, gc.LastError)
		}
		if c.plugin {
			// A plugin's schedule has no process between its runs.
			pids[c.short] = 0
			delete(got, name)
			continue
		}
		procs := d.componentProcs(name)
		if len(procs) != 1 || procs[0].pid != gc.Pid {
			d.t.Errorf("%s: processes %v, want exactly one, pid %d as the agent says", name, pidsOf(procs), gc.Pid)
		}
		pids[c.short] = gc.Pid
		delete(got, name)
	}
	for name, gc := range got {
		d.t.Errorf("%s (%s, %s) is in component list but not in the deployment", name, gc.Version, gc.State)
	}
	return pids
}

func pidsOf(ps []proc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.pid
	}
	return out
}

// Acceptance 1: a three-component deployment with a hard and a soft
// dependency comes up in order, and component list -o json has exactly the
// documented fields of the API.
func TestDeployThreeComponentsInOrder(t *testing.T) {
	t.Parallel()
	d := newDevice(t, deviceOptions{})
	d.start()
	set := threeComponents(d)
	manifest := d.writeDeployment("first", manifestOptions{}, set...)

	r := d.ctlOK("deploy", "apply", "-f", manifest, "--wait")
	if !strings.Contains(r.stdout, "SUCCEEDED") {
		t.Fatalf("apply --wait output lacks SUCCEEDED:\n%s", r)
	}
	d.requireRunning(set...)

	db := d.detail(d.name("db"), "RUNNING")
	app := d.detail(d.name("app"), "RUNNING")
	ui := d.detail(d.name("ui"), "RUNNING")
	dbRunning := transitionAt(t, db, "RUNNING")
	appStarting := transitionAt(t, app, "STARTING")
	if appStarting.Before(dbRunning) {
		t.Errorf("app (hard dependency on db) started at %s, before db was RUNNING at %s", appStarting, dbRunning)
	}
	if uiStarting := transitionAt(t, ui, "STARTING"); uiStarting.Before(appStarting) {
		t.Errorf("ui (soft dependency on app) started at %s, before app started at %s", uiStarting, appStarting)
	}
	if db.Health != "healthy" {
		t.Errorf("db health %q, want healthy", db.Health)
	}

	raw := d.ctlOK("-o", "json", "component", "list").stdout
	var list []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &list); err != nil || len(list) != 3 {
		t.Fatalf("component list -o json: %v\n%s", err, raw)
	}
	want := []string{"cpu_percent", "health", "kind", "last_error", "name", "pid", "restarts", "rss_bytes", "since", "state", "version"}
	for _, c := range list {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range c {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, want) {
			t.Errorf("component list entry has fields %v, want exactly %v", keys, want)
		}
	}

	// The deployment is recorded with every step, and listed.
	dep := d.deployment("first")
	if dep.Status != "SUCCEEDED" || dep.RolledBack || len(dep.Steps) == 0 || dep.FinishedAt == nil {
		t.Errorf("deploy status first: %+v", dep)
	}
	var deps []api.Deployment
	d.ctlJSON(&deps, "deploy", "list")
	if len(deps) != 1 || deps[0].ID != "first" {
		t.Errorf("deploy list: %+v", deps)
	}

	d.stop()
	if left := processes(d.markerPrefix()); len(left) != 0 {
		t.Errorf("after a clean stop these component processes still run: %v", pidsOf(left))
	}
	d.checkStore()
}

// Acceptance 2: a version bump restarts only that component and its hard
// dependents; a config-only change re-renders args and env and restarts
// only that component.
func TestUpdateRestartsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	d := newDevice(t, deviceOptions{})
	d.start()
	set := threeComponents(d)
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("v1", manifestOptions{}, set...), "--wait")
	before := d.requireRunning(set...)

	// db 1.0.0 -> 1.1.0: db and app (hard dependent) restart, ui does not.
	set[0].version = "1.1.0"
	manifest := d.writeDeployment("v2", manifestOptions{}, set...)
	var plan api.DeploymentAccepted
	d.ctlJSON(&plan, "deploy", "plan", "-f", manifest)
	actions := map[string]string{}
	for _, p := range plan.Plan {
		actions[p.Component] = p.Action
	}
	if actions[d.name("db")] != "update" || actions[d.name("ui")] != "unchanged" {
		t.Errorf("plan for a db bump: %+v", plan.Plan)
	}
	if now := d.components()[d.name("db")]; now.Pid != before["db"] || now.Version != "1.0.0" {
		t.Errorf("deploy plan changed db: now %s pid %d, was 1.0.0 pid %d", now.Version, now.Pid, before["db"])
	}
	d.ctlOK("deploy", "apply", "-f", manifest, "--wait")
	after := d.requireRunning(set...)
	if after["db"] == before["db"] {
		t.Errorf("db was bumped to 1.1.0 but kept pid %d", before["db"])
	}
	if after["app"] == before["app"] {
		t.Errorf("app (hard dependent of db) kept pid %d across db's update", before["app"])
	}
	if after["ui"] != before["ui"] {
		t.Errorf("ui (unchanged, soft dependency) restarted: pid %d -> %d", before["ui"], after["ui"])
	}

	// app greeting first -> second: only app restarts, with new args and env.
	set[1].greeting = "second"
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("v3", manifestOptions{}, set...), "--wait")
	final := d.requireRunning(set...)
	if final["app"] == after["app"] {
		t.Errorf("app's config changed but it kept pid %d", after["app"])
	}
	if final["db"] != after["db"] || final["ui"] != after["ui"] {
		t.Errorf("a config change of app restarted others: db %d -> %d, ui %d -> %d", after["db"], final["db"], after["ui"], final["ui"])
	}
	procs := d.componentProcs(d.name("app"))
	if len(procs) != 1 {
		t.Fatalf("app processes: %v", pidsOf(procs))
	}
	if !hasArgs(procs[0].args, "--greeting", "second") {
		t.Errorf("app's /proc/%d/cmdline %q lacks the re-rendered --greeting second", procs[0].pid, procs[0].args)
	}
	if v, _ := envValue(procs[0].env, "GREETING"); v != "second" {
		t.Errorf("app's /proc/%d/environ has GREETING=%q, want second", procs[0].pid, v)
	}
	d.stop()
	d.checkStore()
}

// journal is the svc journal in component short's work folder.
func (d *device) journal(short string) string {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dataDir, "work", d.name(short), "journal"))
	if err != nil {
		d.t.Fatalf("read the work folder of %s: %v", short, err)
	}
	return string(b)
}

// Acceptance 3: a new version that exits at once, and one that never
// becomes healthy, end FAILED with rolled_back, the previous version
// RUNNING again and its work folder intact.
func TestBadReleaseRollsBack(t *testing.T) {
	t.Parallel()
	d := newDevice(t, deviceOptions{})
	d.start()
	set := threeComponents(d)
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("good", manifestOptions{}, set...), "--wait")
	d.requireRunning(set...)

	cases := []struct {
		id, short, fail string
	}{
		{"exits-at-once", "app", "exit"},
		{"never-healthy", "db", "unhealthy"},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			d := d.sub(t)
			journal := d.journal(tc.short)
			bad := slices.Clone(set)
			for i := range bad {
				if bad[i].short == tc.short {
					bad[i].version, bad[i].fail = "2.0.0", tc.fail
				}
			}
			manifest := d.writeDeployment(tc.id, manifestOptions{healthTimeout: "4s"}, bad...)
			if tc.fail == "unhealthy" {
				// Applied without waiting, deploy status shows the step it is on
				// and what it waits for, since when, while the new db fails its
				// health checks.
				d.ctlOK("deploy", "apply", "-f", manifest)
				var status string
				d.waitFor("deploy status to show what "+tc.id+" waits for", 30*time.Second, func() bool {
					status = d.ctlOK("deploy", "status", tc.id).stdout
					return strings.Contains(status, "IN_PROGRESS") && strings.Contains(status, "\nSTEP         start, since ") &&
						strings.Contains(status, "\nWAITING FOR  RUNNING and healthy: ") && strings.Contains(status, d.name("db")+" (")
				})
				t.Logf("deploy status while in progress:\n%s", status)
			}
			// Applying the same id again waits for that deployment: the id is
			// the idempotency key.
			r := d.ctl("deploy", "apply", "-f", manifest, "--wait")
			if r.code != 1 || !strings.Contains(r.stderr, "deployment "+tc.id+" FAILED") || !strings.Contains(r.stderr, "the previous deployment was restored") {
				t.Fatalf("apply of a bad release: want exit 1 saying FAILED and restored; %s", r)
			}
			dep := d.deployment(tc.id)
			if dep.Status != "FAILED" || !dep.RolledBack || dep.ErrorCode == "" {
				t.Errorf("deployment %s: status %s, rolled_back %v, error_code %q", tc.id, dep.Status, dep.RolledBack, dep.ErrorCode)
			}
			d.requireRunning(set...)
			now := d.journal(tc.short)
			if !strings.HasPrefix(now, journal) {
				t.Errorf("the work folder of %s lost data across the rollback:\nbefore:\n%s\nafter:\n%s", tc.short, journal, now)
			}
			if !strings.Contains(strings.TrimPrefix(now, journal), " 1.0.0 ") {
				t.Errorf("%s's journal shows no restart of 1.0.0 after the rollback:\n%s", tc.short, now)
			}
		})
	}
	d.stop()
	d.checkStore()
}
