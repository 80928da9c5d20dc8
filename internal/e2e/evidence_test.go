package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

// A new component that fails with a line on stderr: the line is in deploy
// apply --wait's error, in deploy status -o json and in component get, and
// its logs stay readable, also after the rollback removed it.
func TestFailureEvidenceSurvivesTheRollback(t *testing.T) {
	t.Parallel()
	d := newDevice(t, deviceOptions{})
	d.start()
	set := threeComponents(d)
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("good", manifestOptions{}, set...), "--wait")

	const evidence = "svc: told to fail at once" // what svc --exit-now prints on stderr
	crasher := comp{short: "crasher", version: "1.0.0", fail: "exit"}
	manifest := d.writeDeployment("with-crasher", manifestOptions{healthTimeout: "10s"}, append(set, crasher)...)
	r := d.ctl("deploy", "apply", "-f", manifest, "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, evidence) {
		t.Fatalf("deploy apply --wait does not quote the component's stderr: %s", r)
	}
	d.requireRunning(set...)

	var dep api.Deployment
	d.ctlJSON(&dep, "deploy", "status", "with-crasher")
	if raw, _ := json.Marshal(dep); !dep.RolledBack || !strings.Contains(string(raw), evidence) {
		t.Errorf("deploy status -o json lacks the evidence: %s", raw)
	}

	name := d.name("crasher")
	if _, ok := d.components()[name]; ok {
		t.Fatalf("%s is still listed after the rollback", name)
	}
	get := d.ctlOK("component", "get", name)
	if !strings.Contains(get.stdout, evidence) || !strings.Contains(get.stdout, "removed") {
		t.Errorf("component get of the removed component:\n%s", get.stdout)
	}
	var detail api.ComponentDetail
	d.ctlJSON(&detail, "component", "get", name)
	if !detail.Removed || !strings.Contains(detail.LastError, evidence) || detail.Version != "1.0.0" {
		t.Errorf("component get -o json of the removed component: %+v", detail)
	}
	logs := d.ctlOK("component", "logs", name)
	if !strings.Contains(logs.stdout, evidence) {
		t.Errorf("component logs of the removed component:\nstdout:\n%s\nstderr:\n%s", logs.stdout, logs.stderr)
	}
	if !strings.Contains(logs.stdout, "no longer deployed") {
		t.Errorf("component logs does not say the component is gone:\n%s", logs.stdout)
	}
	// A name that never existed is still NOT_FOUND.
	if r := d.ctl("component", "get", d.name("never")); r.code != 1 || !strings.Contains(r.stderr, "[NOT_FOUND]") {
		t.Errorf("component get of an unknown name: %s", r)
	}
	d.stop()
	d.checkStore()
}

// A BROKEN component is started again after its recipe's broken_retry,
// with no command: here it keeps failing until its work folder has a file
// "ready", which appears while it is BROKEN.
func TestBrokenComponentIsTriedAgain(t *testing.T) {
	t.Parallel()
	d := newDevice(t, deviceOptions{})
	d.start()
	name := d.name("flaky")
	dir := filepath.Join(d.dir, "deployments", "flaky")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.writeRecipe(filepath.Join(dir, "flaky.recipe.toml"), fmt.Sprintf(`format = 1
[metadata]
name    = %q
version = "1.0.0"
kind    = "process"

[lifecycle.run]
script          = "test -f ready || { echo 'no sensor yet' >&2; exit 1; }; exec sleep 1000"
restart_policy  = "always"
restart_backoff = { initial = "0s", max = "0s" }
max_restarts    = { count = 0, window = "1m" }
broken_retry    = "2s"
`, name))
	manifest := filepath.Join(dir, "deployment.toml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`format = 1
[deployment]
id = "flaky"
failure_policy = "keep"
health_timeout = "2s"

[[components]]
name    = %q
version = "1.0.0"
recipe  = "flaky.recipe.toml"
`, name)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := d.ctl("deploy", "apply", "-f", manifest, "--wait")
	if r.code != 1 {
		t.Fatalf("a deployment whose only component fails: %s", r)
	}
	d.waitFor(name+" BROKEN", 30*time.Second, func() bool { return d.components()[name].State == "BROKEN" })
	if err := os.WriteFile(filepath.Join(d.dataDir, "work", name, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitFor(name+" RUNNING again after broken_retry", 30*time.Second, func() bool { return d.components()[name].State == "RUNNING" })
	detail := d.detail(name, "RUNNING")
	found := false
	for _, tr := range detail.Transitions {
		found = found || (tr.From == "BROKEN" && strings.Contains(tr.Reason, "broken_retry"))
	}
	if !found {
		t.Errorf("no BROKEN -> STARTING transition for broken_retry: %+v", detail.Transitions)
	}
	d.stop()
}

// Every way an operator commonly gets an error: each is checked by ctl for
// repeated phrases, "context canceled" and internal package names (see
// errorTextProblems), and must name what it is about.
func TestErrorsReadOnce(t *testing.T) {
	t.Parallel()
	d := newDevice(t, deviceOptions{})
	d.start()
	set := threeComponents(d)
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("good", manifestOptions{}, set...), "--wait")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "status", "nope"}, "no deployment nope (keystonectl deploy list shows them) [NOT_FOUND]"},
		{[]string{"deploy", "cancel", "good"}, "already SUCCEEDED"},
		{[]string{"deploy", "cancel", "nope"}, "nope"},
		{[]string{"component", "restart", d.name("nope")}, "no component"},
		{[]string{"component", "logs", d.name("nope")}, "no component"},
		{[]string{"plugin", "run", d.name("app")}, d.name("app")},
		{[]string{"deploy", "rollback", "--dry-run"}, "nothing to roll back to: no deployment succeeded before good"},
	} {
		r := d.ctl(tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("keystonectl %s: want exit 1 and %q; %s", strings.Join(tc.args, " "), tc.want, r)
		}
	}
	// A recipe edited after it was signed: SIGNATURE_INVALID, saying it may
	// have been edited (not only "a wrong key").
	edited := d.writeDeployment("edited", manifestOptions{}, set...)
	recipe := filepath.Join(filepath.Dir(edited), "recipes", "app-1.0.0.recipe.toml")
	text, err := os.ReadFile(recipe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recipe, []byte(strings.Replace(string(text), `greeting = "hello"`, `greeting = "edited"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := d.ctl("-o", "json", "deploy", "apply", "-f", edited)
	var refused struct{ Error, Code string }
	if err := json.Unmarshal([]byte(r.stdout), &refused); err != nil || r.code != 1 || refused.Code != "SIGNATURE_INVALID" ||
		!strings.Contains(r.stdout, "changed after it was signed") {
		t.Errorf("a recipe edited after signing: %s", r)
	}
	// Applying a finished deployment's id again says it ran before, not
	// that it was accepted.
	again := d.ctlOK("deploy", "apply", "-f", d.writeDeployment("good", manifestOptions{}, set...))
	if !strings.Contains(again.stdout, "deployment good was applied before (SUCCEEDED); nothing new was queued") || strings.Contains(again.stdout, "accepted") {
		t.Errorf("re-applying a finished id:\n%s", again.stdout)
	}
	// A plan is not a deployment: its JSON has no empty id.
	plan := d.ctlOK("-o", "json", "deploy", "plan", "-f", d.writeDeployment("next", manifestOptions{}, set...))
	if strings.Contains(plan.stdout, `"id"`) || !strings.Contains(plan.stdout, `"plan"`) {
		t.Errorf("deploy plan -o json:\n%s", plan.stdout)
	}
	// With a deployment to go back to, a dry run says which and changes nothing.
	next := slices.Clone(set)
	next[0].greeting = "hi"
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("next", manifestOptions{}, next...), "--wait")
	dry := d.ctlOK("deploy", "rollback", "--dry-run")
	if !strings.Contains(dry.stdout, "a rollback would re-apply deployment good") || len(d.ctlOK("deploy", "list").stdout) == 0 {
		t.Errorf("deploy rollback --dry-run:\n%s", dry.stdout)
	}
	var list []api.Deployment
	d.ctlJSON(&list, "deploy", "list")
	if len(list) != 2 {
		t.Errorf("a dry run queued a deployment: %d deployments", len(list))
	}
	d.stop()
}
