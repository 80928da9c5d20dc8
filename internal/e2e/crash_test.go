package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

// faultEnv makes keystone-agent SIGKILL itself right after the named
// deployment checkpoint ("<step>:<status>") is durable
// (cmd/keystone-agent).
const faultEnv = "KEYSTONE_FAULT_CRASH_AFTER_STEP"

// crashSets are the old and new sets of the crash tests: the new one bumps
// db (and so restarts app, its hard dependent), reconfigures app, removes
// ui and adds extra — every kind of change at once. bad is the old set with
// a db that never becomes healthy.
func crashSets(d *device) (old, new, bad []comp) {
	port := d.freePort()
	old = []comp{
		{short: "db", version: "1.0.0", port: port},
		{short: "app", version: "1.0.0", hard: []string{"db"}, greeting: "old"},
		{short: "ui", version: "1.0.0", soft: []string{"app"}},
	}
	new = []comp{
		{short: "db", version: "1.1.0", port: port},
		{short: "app", version: "1.0.0", hard: []string{"db"}, greeting: "new"},
		{short: "extra", version: "1.0.0", soft: []string{"db"}},
	}
	bad = slices.Clone(old)
	bad[0] = comp{short: "db", version: "2.0.0", port: port, fail: "unhealthy"}
	return old, new, bad
}

// checkpoints lists the checkpoints deployment dep went through, in order,
// as the fault hook names them.
func checkpoints(dep api.Deployment) []string {
	var out []string
	for _, s := range dep.Steps {
		cp := s.Name + ":" + s.Status
		if !slices.Contains(out, cp) {
			out = append(out, cp)
		}
	}
	return out
}

// Acceptance 4: the agent is killed with SIGKILL right after each
// checkpoint of a deployment (and of a rollback); started again, it ends in
// exactly the new set or exactly the old one, its store passes
// integrity_check, and no component runs twice.
func TestCrashAtEveryCheckpointEndsOldOrNew(t *testing.T) {
	t.Parallel()
	// Learn the checkpoints from deployments that run through: one that
	// succeeds and one that fails and rolls back.
	ref := newDevice(t, deviceOptions{})
	old, new, bad := crashSets(ref)
	ref.start()
	ref.ctlOK("deploy", "apply", "-f", ref.writeDeployment("old", manifestOptions{}, old...), "--wait")
	ref.ctlOK("deploy", "apply", "-f", ref.writeDeployment("new", manifestOptions{}, new...), "--wait")
	ref.ctlOK("deploy", "apply", "-f", ref.writeDeployment("old-again", manifestOptions{}, old...), "--wait")
	ref.ctl("deploy", "apply", "-f", ref.writeDeployment("bad", manifestOptions{healthTimeout: "5s"}, bad...), "--wait")
	success := checkpoints(ref.deployment("new"))
	failure := checkpoints(ref.deployment("bad"))
	ref.stop()
	t.Logf("checkpoints of a deployment: %v; of a failed one: %v", success, failure)
	if len(success) < 6 || !slices.Contains(failure, "rollback:started") {
		t.Fatalf("too few checkpoints to test: %v and %v", success, failure)
	}

	type crashCase struct {
		checkpoint string
		failing    bool // the deployment fails: it must end in the old set
	}
	var cases []crashCase
	for _, cp := range success {
		cases = append(cases, crashCase{cp, false})
	}
	for _, cp := range failure {
		if !slices.Contains(success, cp) {
			cases = append(cases, crashCase{cp, true})
		}
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.checkpoint, ":", "-"), func(t *testing.T) {
			t.Parallel() // each case is a device of its own
			crashAt(t, tc.checkpoint, tc.failing)
		})
	}
}

// crashAt runs one crash case on a device of its own.
func crashAt(t *testing.T, checkpoint string, failing bool) {
	d := newDevice(t, deviceOptions{})
	old, new, bad := crashSets(d)
	d.start()
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("old", manifestOptions{}, old...), "--wait")
	d.requireRunning(old...)
	d.stop()

	// The same device, now with the fault armed: the old set comes back,
	// then the next deployment kills the agent at the checkpoint.
	d.start(faultEnv + "=" + checkpoint)
	d.waitRunning(old...)
	target, id := new, "new"
	if failing {
		target, id = bad, "bad"
	}
	manifest := d.writeDeployment(id, manifestOptions{healthTimeout: "5s"}, target...)
	r := d.ctl("deploy", "apply", "-f", manifest) // may lose its answer to the crash
	d.waitKilled(90 * time.Second)

	d.start()
	dep := d.waitDeployment(id, 2*time.Minute)
	switch {
	case dep.Status == "SUCCEEDED" && !failing:
		d.waitRunning(new...)
		d.requireGreeting("app", "new")
	case dep.Status == "FAILED" || dep.Status == "CANCELED":
		if !dep.RolledBack {
			t.Errorf("deployment %s ended %s without rolled_back", id, dep.Status)
		}
		d.waitRunning(old...)
		d.requireGreeting("app", "old")
	default:
		t.Errorf("deployment %s ended %s (rolled_back %v, error %q) after a crash at %s; apply said: %s",
			id, dep.Status, dep.RolledBack, dep.Error, checkpoint, r)
	}
	if all := processes(d.markerPrefix()); len(all) != 3 {
		t.Errorf("%d component processes run, want 3 (one per component): %v", len(all), pidsOf(all))
	}
	d.stop()
	d.checkStore()
}

// requireGreeting checks that component short's one process runs with the
// greeting of the set it belongs to.
func (d *device) requireGreeting(short, greeting string) {
	d.t.Helper()
	procs := d.componentProcs(d.name(short))
	if len(procs) != 1 || !hasArgs(procs[0].args, "--greeting", greeting) {
		var args [][]string
		for _, p := range procs {
			args = append(args, p.args)
		}
		d.t.Errorf("%s runs as %q, want one process with --greeting %s", short, args, greeting)
	}
}
