package deploy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// base is a three-component set: a, b needs a (hard), c follows b (soft).
func base() []spec {
	return []spec{
		{name: "com.test.a", version: "1.0.0"},
		{name: "com.test.b", version: "1.0.0", deps: []string{"com.test.a"}},
		{name: "com.test.c", version: "1.0.0", deps: []string{"~com.test.b"}},
	}
}

func versions(specs []spec) map[string]string {
	out := map[string]string{}
	for _, s := range specs {
		out[s.name] = s.version
	}
	return out
}

func TestThreeComponentsStartInDependencyOrder(t *testing.T) {
	r := newRig(t)
	d := r.deploy(manifest{id: "first", comps: base()})
	mustSucceed(t, d)
	r.running(versions(base()))

	log := r.log.drain()
	aUp, bStart, bUp, cStart := indexOf(log, "com.test.a", "RUNNING"), indexOf(log, "com.test.b", "STARTING"),
		indexOf(log, "com.test.b", "RUNNING"), indexOf(log, "com.test.c", "STARTING")
	if aUp < 0 || bStart < 0 || bUp < 0 || cStart < 0 {
		t.Fatalf("missing transitions: a RUNNING %d, b STARTING %d, b RUNNING %d, c STARTING %d", aUp, bStart, bUp, cStart)
	}
	if bStart < aUp {
		t.Errorf("b (hard dependency on a) started before a was RUNNING")
	}
	if cStart < bStart {
		t.Errorf("c (soft dependency on b) started before b")
	}
	// The deployment's record: every step in order, the plan, the status.
	var names []string
	for _, s := range d.Steps {
		names = append(names, string(s.Name)+":"+string(s.Status))
	}
	want := []string{"validate:done", "fetch:started", "fetch:done", "plan:done", "stop:started", "stop:done",
		"start:started", "start:done", "commit:started", "commit:done"}
	if !slices.Equal(names, want) {
		t.Errorf("steps = %v, want %v", names, want)
	}
	if len(d.Plan) != 3 || d.Plan[0].Action != deploy.ActionAdd {
		t.Errorf("plan = %+v, want three adds", d.Plan)
	}
	if d.FinishedAt.IsZero() || d.RolledBack || d.ErrorCode != "" {
		t.Errorf("finished record: %+v", d)
	}
	cur := r.eng.Current()
	if cur.DeploymentID != "first" || len(cur.Components) != 3 || cur.Components[1].Name != "com.test.b" {
		t.Errorf("Current() = %+v", cur)
	}
	// Progress went out on the bus, one event per checkpoint.
	var steps int
	for _, e := range log {
		if e.Kind == events.KindDeployment && e.Deployment == "first" && e.Step != "" && e.Step != deploy.StepCleanup {
			steps++
		}
	}
	if steps != len(want) {
		t.Errorf("%d step events, want %d", steps, len(want))
	}
	if err := r.store.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestVersionBumpRestartsOnlyItAndItsHardDependents(t *testing.T) {
	r := newRig(t)
	set := append(base(), spec{name: "com.test.d", version: "1.0.0"})
	mustSucceed(t, r.deploy(manifest{comps: set}))
	before := r.running(versions(set))

	// a is bumped: a and b (hard dependent) restart; c (soft) and d do not.
	set[0].version = "1.1.0"
	d := r.deploy(manifest{comps: set})
	mustSucceed(t, d)
	after := r.running(versions(set))
	for _, n := range []string{"com.test.a", "com.test.b"} {
		if after[n] == before[n] {
			t.Errorf("%s kept pid %d across a bump of a", n, after[n])
		}
	}
	for _, n := range []string{"com.test.c", "com.test.d"} {
		if after[n] != before[n] {
			t.Errorf("%s restarted (pid %d -> %d) though neither it nor a hard dependency changed", n, before[n], after[n])
		}
	}
	actions := map[string]deploy.PlanAction{}
	for _, it := range d.Plan {
		actions[it.Component] = it.Action
	}
	if actions["com.test.a"] != "update" || actions["com.test.b"] != "restart" ||
		actions["com.test.c"] != "unchanged" || actions["com.test.d"] != "unchanged" {
		t.Errorf("plan actions = %v", actions)
	}

	// A leaf (nothing depends on d) bumped: only d restarts.
	before = after
	set[3].version = "2.0.0"
	mustSucceed(t, r.deploy(manifest{comps: set}))
	after = r.running(versions(set))
	for n, pid := range before {
		if changed := after[n] != pid; changed != (n == "com.test.d") {
			t.Errorf("%s: pid %d -> %d after bumping the leaf d", n, pid, after[n])
		}
	}
}

// An override of the wrong type, or of a key the recipe has no default
// for, is refused with the manifest's file and line.
func TestConfigOverridesAreCheckedWithFileAndLine(t *testing.T) {
	r := newRig(t)
	set := base()
	set[2].defaults = "greeting = \"hello\"\ninterval_seconds = 30"
	m := manifest{comps: set, config: map[string]string{"com.test.c": "interval_seconds = \"fast\"\ncolour = \"blue\""}}
	_, err := r.eng.Submit(context.Background(), r.request(m))
	var ve *deploy.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Submit = %v, want a ValidationError", err)
	}
	msgs := strings.Join(ve.Messages(), "\n")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`deployment\.toml:\d+:\d+: components\[2\]\.config\.interval_seconds: is a string \("fast"\), but its default is an integer \(30\)`),
		regexp.MustCompile(`deployment\.toml:\d+:\d+: components\[2\]\.config\.colour: not in the config\.defaults of com\.test\.c`),
	} {
		if !want.MatchString(msgs) {
			t.Errorf("problems do not match %s:\n%s", want, msgs)
		}
	}
}

func TestConfigOnlyChangeRerendersAndRestartsOnlyThatComponent(t *testing.T) {
	r := newRig(t)
	set := base()
	set[2].defaults = `greeting = "hello"`
	set[2].command = "/bin/sh"
	set[2].args = []string{"-c", `echo "$1" > greeting; exec sleep 600`, "sh", "${config.greeting}"}
	set[2].env = map[string]string{"GREETING": "${config.greeting} from ${device.id}"}
	m := manifest{comps: set, config: map[string]string{"com.test.c": `greeting = "hi"`}}
	mustSucceed(t, r.deploy(m))
	before := r.running(versions(set))
	if got := readEnv(t, before["com.test.c"], "GREETING"); got != "hi from dev-1" {
		t.Fatalf("GREETING = %q, want the deployment's override rendered", got)
	}

	m.config["com.test.c"] = `greeting = "bonjour"`
	d := r.deploy(m)
	mustSucceed(t, d)
	after := r.running(versions(set))
	for n, pid := range before {
		if changed := after[n] != pid; changed != (n == "com.test.c") {
			t.Errorf("%s: pid %d -> %d after a config change of c only", n, pid, after[n])
		}
	}
	if got := readEnv(t, after["com.test.c"], "GREETING"); got != "bonjour from dev-1" {
		t.Errorf("env after reconfigure: GREETING = %q", got)
	}
	b, err := os.ReadFile(filepath.Join(r.paths.WorkDir("com.test.c"), "greeting"))
	if err != nil || strings.TrimSpace(string(b)) != "bonjour" {
		t.Errorf("args after reconfigure: work/greeting = %q (%v)", b, err)
	}
	for _, it := range d.Plan {
		if it.Component == "com.test.c" && (it.Action != "reconfigure" ||
			!strings.Contains(it.Reason, "lifecycle.run.args") || !strings.Contains(it.Reason, "lifecycle.run.env")) {
			t.Errorf("plan item for c: %+v", it)
		}
	}
}

func readEnv(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// failingRollback deploys v1, then v2 with a's new version broken as
// broken says, and checks the rollback.
func failingRollback(t *testing.T, broken spec, wantCode deploy.Code) {
	r := newRig(t)
	set := base()
	set[0].script = `echo "started v1" >> data.txt; exec sleep 600`
	mustSucceed(t, r.deploy(manifest{comps: set}))
	before := r.running(versions(set))
	dataFile := filepath.Join(r.paths.WorkDir("com.test.a"), "data.txt")

	bad := append([]spec(nil), set...)
	broken.name, broken.version = "com.test.a", "2.0.0"
	bad[0] = broken
	bad = append(bad, spec{name: "com.test.new", version: "1.0.0"})
	d := r.deploy(manifest{comps: bad, healthTimeout: "3s"})
	if d.Status != "FAILED" || !d.RolledBack || d.ErrorCode != wantCode {
		t.Fatalf("deployment ended %s rolled_back=%v %s: %s (steps %s)", d.Status, d.RolledBack, d.ErrorCode, d.Error, stepsOf(d))
	}
	after := r.running(versions(set)) // exactly the old set: the new component is gone again
	if after["com.test.c"] != before["com.test.c"] {
		t.Errorf("c (untouched by the deployment) restarted")
	}
	b, err := os.ReadFile(dataFile)
	if err != nil || !strings.HasPrefix(string(b), "started v1\n") {
		t.Errorf("a's work folder file after the rollback: %q (%v)", b, err)
	}
	if _, err := os.Stat(filepath.Join(r.paths.Components, "com.test.a", "1.0.0")); err != nil {
		t.Errorf("the previous version's folder: %v", err)
	}
	if cur := r.eng.Current(); cur.DeploymentID == d.ID {
		t.Errorf("the failed deployment became current")
	}
	last := d.Steps[len(d.Steps)-1]
	if last.Name != "rollback" || last.Status != "done" {
		t.Errorf("last step = %+v", last)
	}
}

func TestExitingVersionRollsBack(t *testing.T) {
	failingRollback(t, spec{script: "exit 3", restart: "never"}, deploy.CodeComponentFailed)
}

func TestCrashLoopingVersionRollsBack(t *testing.T) {
	failingRollback(t, spec{script: "exit 1", restart: "always"}, deploy.CodeComponentFailed)
}

func TestNeverHealthyVersionRollsBack(t *testing.T) {
	failingRollback(t, spec{health: "cmd:false"}, deploy.CodeHealthTimeout)
}

func TestFailedInstallRollsBack(t *testing.T) {
	failingRollback(t, spec{install: "echo no disk >&2; exit 1"}, deploy.CodeInstallFailed)
}

func TestFailurePolicyKeepLeavesWhatSucceeded(t *testing.T) {
	r := newRig(t)
	set := []spec{{name: "com.test.a", version: "1.0.0"}, {name: "com.test.b", version: "1.0.0"}}
	mustSucceed(t, r.deploy(manifest{comps: set}))

	next := []spec{{name: "com.test.a", version: "2.0.0"}, {name: "com.test.b", version: "2.0.0", script: "exit 4", restart: "never"}}
	d := r.deploy(manifest{comps: next, policy: "keep"})
	if d.Status != "FAILED" || d.RolledBack || d.ErrorCode != deploy.CodeComponentFailed || !strings.Contains(d.Error, "com.test.b") {
		t.Fatalf("keep deployment: %s rolled_back=%v %s: %s", d.Status, d.RolledBack, d.ErrorCode, d.Error)
	}
	// The failure is said once, and no context's words leak into it.
	if strings.Count(d.Error, "exited with status 4") != 1 || strings.Contains(d.Error, "context") {
		t.Errorf("keep deployment's error repeats itself or leaks: %s", d.Error)
	}
	sts := r.statuses()
	if a := sts["com.test.a"]; a.Version != "2.0.0" || a.State.String() != "RUNNING" {
		t.Errorf("a under keep: %s@%s, want RUNNING@2.0.0", a.State, a.Version)
	}
	if b := sts["com.test.b"]; b.Version != "2.0.0" || !b.Failed() {
		t.Errorf("b under keep: %s@%s, want failed at 2.0.0", b.State, b.Version)
	}
	if cur := r.eng.Current(); cur.DeploymentID != d.ID {
		t.Errorf("under keep the new set is current; Current() = %+v", cur)
	}

	// A later deployment fixing b is not blocked by the failed component.
	fixed := []spec{next[0], {name: "com.test.b", version: "2.0.1"}}
	mustSucceed(t, r.deploy(manifest{comps: fixed}))
	r.running(versions(fixed))
}

func TestValidationListsEveryProblemAndChangesNothing(t *testing.T) {
	r := newRig(t)
	mustSucceed(t, r.deploy(manifest{id: "good", comps: base()}))
	before := r.running(versions(base()))

	req := r.request(manifest{id: "bad", comps: []spec{
		{name: "com.test.x", version: "1.0.0", deps: []string{"com.test.missing"}},
		{name: "com.test.y", version: "1.0.0"},
		{name: "com.test.z", version: "1.0.0"},
	}})
	// A recipe with two mistakes, one tampered after signing, one not sent.
	req.Files["com.test.y.recipe.toml"] = []byte(strings.Replace(string(req.Files["com.test.y.recipe.toml"]),
		`restart_policy = "on-failure"`, `restart_policy = "sometimes"`+"\nstop_signal = \"SIGNOPE\"", 1))
	req.Files["com.test.y.recipe.toml.sig"] = r.sign(req.Files["com.test.y.recipe.toml"])
	req.Files["com.test.z.recipe.toml"] = append(req.Files["com.test.z.recipe.toml"], []byte("# changed\n")...)
	req.Manifest = append(req.Manifest, []byte("[[components]]\nname = \"com.test.w\"\nversion = \"1.0.0\"\nrecipe = \"w.recipe.toml\"\n")...)

	_, err := r.eng.Submit(context.Background(), req)
	var ve *deploy.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, deploy.ErrInvalid) {
		t.Fatalf("Submit error = %v, want a ValidationError", err)
	}
	want := []string{
		"com.test.y.recipe.toml:", "lifecycle.run.restart_policy",
		"lifecycle.run.stop_signal",
		"com.test.z.recipe.toml: the signature in com.test.z.recipe.toml.sig does not match",
		"w.recipe.toml was not sent",
	}
	msgs := strings.Join(ve.Messages(), "\n")
	for _, w := range want {
		if !strings.Contains(msgs, w) {
			t.Errorf("problems do not mention %q:\n%s", w, msgs)
		}
	}
	if ve.Code() != "SIGNATURE_INVALID" {
		t.Errorf("Code() = %s, want SIGNATURE_INVALID", ve.Code())
	}
	// The graph is checked too, once every recipe is right.
	req2 := r.request(manifest{id: "bad2", comps: []spec{
		{name: "com.test.x", version: "1.0.0", deps: []string{"com.test.missing"}},
		{name: "com.test.p", version: "1.0.0", deps: []string{"com.test.q"}},
		{name: "com.test.q", version: "1.0.0", deps: []string{"com.test.p"}},
	}})
	_, err = r.eng.Submit(context.Background(), req2)
	if !errors.As(err, &ve) || len(ve.Problems) != 2 || !strings.Contains(ve.Error(), "com.test.missing") ||
		!strings.Contains(ve.Error(), "cycle") {
		t.Errorf("graph problems: %v", err)
	}
	// Nothing was recorded or changed.
	list, err := r.eng.List(context.Background(), 0)
	if err != nil || len(list) != 1 || list[0].ID != "good" {
		t.Fatalf("deployments after refusals: %v (%v)", list, err)
	}
	after := r.running(versions(base()))
	for n, pid := range before {
		if after[n] != pid {
			t.Errorf("%s restarted after a refused deployment", n)
		}
	}
	if _, err := r.eng.Get(context.Background(), "bad"); !errors.Is(err, deploy.ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a refused id: %v", err)
	}
}

func TestDeploymentIDIsIdempotent(t *testing.T) {
	r := newRig(t)
	req := r.request(manifest{id: "once", comps: base()})
	acc, err := r.eng.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, r.wait(acc.ID))
	pids := r.running(versions(base()))
	again, err := r.eng.Submit(context.Background(), req)
	if err != nil || again.ID != "once" {
		t.Fatalf("resubmit: %v %v", again, err)
	}
	d := r.wait("once")
	mustSucceed(t, d)
	if n := strings.Count(stepsOf(d), "commit:done"); n != 1 {
		t.Errorf("the deployment ran %d times", n)
	}
	after := r.running(versions(base()))
	for n, pid := range pids {
		if after[n] != pid {
			t.Errorf("%s restarted on a resubmitted id", n)
		}
	}
	other := r.request(manifest{id: "once", comps: base()[:1]})
	if _, err := r.eng.Submit(context.Background(), other); !errors.Is(err, deploy.ErrConflict) {
		t.Errorf("another manifest under a used id: %v, want ErrConflict", err)
	}
}

func TestFetchFailureTouchesNothing(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	script := []byte("#!/bin/sh\nexec sleep 600\n")
	path := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	good := spec{name: "com.test.a", version: "1.0.0", script: `exec "${component.version_dir}/run.sh"`,
		artifact: &artifact{uri: "file://" + path, sha256: hex.EncodeToString(sum[:])}}
	set := []spec{good, {name: "com.test.b", version: "1.0.0"}}
	mustSucceed(t, r.deploy(manifest{comps: set}))
	before := r.running(versions(set))
	if b, err := os.ReadFile(filepath.Join(r.paths.Components, "com.test.a", "1.0.0", "run.sh")); err != nil || string(b) != string(script) {
		t.Fatalf("placed artifact: %q %v", b, err)
	}

	bad := good
	bad.version = "2.0.0"
	bad.artifact = &artifact{uri: "file://" + path, sha256: strings.Repeat("ab", 32)}
	d := r.deploy(manifest{comps: []spec{bad, set[1]}})
	if d.Status != "FAILED" || d.RolledBack || d.ErrorCode != "HASH_MISMATCH" {
		t.Fatalf("deployment with a wrong sha256: %s rolled_back=%v %s: %s", d.Status, d.RolledBack, d.ErrorCode, d.Error)
	}
	if strings.Contains(stepsOf(d), "stop:") || strings.Contains(stepsOf(d), "plan:") {
		t.Errorf("a failed fetch went on to %s", stepsOf(d))
	}
	after := r.running(versions(set))
	for n, pid := range before {
		if after[n] != pid {
			t.Errorf("%s restarted though the fetch failed", n)
		}
	}
}

func TestOldVersionsBeyondKeepVersionsAreRemoved(t *testing.T) {
	r := newRig(t, func(o *rigOptions) { o.keep = 2 })
	for _, v := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		d := r.deploy(manifest{comps: []spec{{name: "com.test.a", version: v}}})
		mustSucceed(t, d)
		r.log.waitFor("cleanup after "+d.ID, func(e events.Event) bool {
			return e.Deployment == d.ID && e.Step == deploy.StepCleanup
		})
	}
	ents, err := os.ReadDir(filepath.Join(r.paths.Components, "com.test.a"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, []string{"2.0.0", "3.0.0"}) {
		t.Errorf("version folders = %v, want [2.0.0 3.0.0]", got)
	}
}

func TestRollbackReappliesThePreviousSuccessfulDeployment(t *testing.T) {
	r := newRig(t)
	v1 := base()
	mustSucceed(t, r.deploy(manifest{id: "v1", comps: v1}))
	v2 := base()
	v2[1].version = "1.5.0"
	mustSucceed(t, r.deploy(manifest{id: "v2", comps: v2}))
	// A dry run answers what the rollback would change, and does nothing.
	dry, err := r.eng.Rollback(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.ID != "" || dry.RollbackTo != "v1" || len(dry.Plan) == 0 || r.eng.Current().DeploymentID != "v2" {
		t.Errorf("dry run: %+v, current %s", dry, r.eng.Current().DeploymentID)
	}
	if list, _ := r.eng.List(context.Background(), 0); len(list) != 2 {
		t.Errorf("a dry run recorded a deployment: %d deployments", len(list))
	}
	r.running(versions(v2))
	acc, err := r.eng.Rollback(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if acc.RollbackTo != "v1" {
		t.Errorf("rollback to %q, want v1", acc.RollbackTo)
	}
	if acc.ID == "v1" || !strings.HasPrefix(acc.ID, "rollback-to-v1-") {
		t.Errorf("rollback id = %q", acc.ID)
	}
	mustSucceed(t, r.wait(acc.ID))
	r.running(versions(v1))
	if cur := r.eng.Current(); cur.DeploymentID != acc.ID {
		t.Errorf("Current() = %+v", cur)
	}
}

func TestQueueRunsDeploymentsOneAtATime(t *testing.T) {
	r := newRig(t)
	first := base()
	second := base()
	second[0].version = "1.1.0"
	a1, err := r.eng.Submit(context.Background(), r.request(manifest{id: "q1", comps: first}))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := r.eng.Submit(context.Background(), r.request(manifest{id: "q2", comps: second}))
	if err != nil {
		t.Fatal(err)
	}
	d2 := r.wait(a2.ID)
	d1 := r.wait(a1.ID)
	mustSucceed(t, d1)
	mustSucceed(t, d2)
	if !d2.Steps[1].At.After(d1.FinishedAt) && !d2.Steps[1].At.Equal(d1.FinishedAt) {
		t.Errorf("q2 started (%v) before q1 finished (%v)", d2.Steps[1].At, d1.FinishedAt)
	}
	// q2 was planned against q1's result: a is an update, not an add.
	for _, it := range d2.Plan {
		if it.Component == "com.test.a" && it.Action != "update" {
			t.Errorf("q2's plan for a: %+v", it)
		}
	}
	r.running(versions(second))
	list, err := r.eng.List(context.Background(), 0)
	if err != nil || len(list) != 2 || list[0].ID != "q2" {
		t.Fatalf("List = %v, %v", list, err)
	}
}

// slowSet is base with a component that never becomes healthy, so its
// deployment stays in the start step until canceled.
func slowSet() []spec {
	s := base()
	s[0].version = "2.0.0"
	s[0].health = "cmd:false"
	return s
}

// waitStep returns once deployment id has appended checkpoint step.
func (r *rig) waitStep(id, step, status string) {
	r.t.Helper()
	r.log.waitFor(id+" "+step+":"+status, func(e events.Event) bool {
		return e.Kind == events.KindDeployment && e.Deployment == id && e.Step == step && e.Reason == status
	})
}

func TestCancelStopsARunningDeploymentAndRollsBack(t *testing.T) {
	r := newRig(t)
	mustSucceed(t, r.deploy(manifest{comps: base()}))
	before := r.running(versions(base()))
	acc, err := r.eng.Submit(context.Background(), r.request(manifest{id: "slow", comps: slowSet(), healthTimeout: "10m"}))
	if err != nil {
		t.Fatal(err)
	}
	r.waitStep("slow", "start", "started")
	d, err := r.eng.Get(context.Background(), "slow")
	if err != nil || d.Status != "IN_PROGRESS" || !strings.Contains(d.WaitingFor, "com.test.a") || d.Since.IsZero() {
		t.Fatalf("status while waiting: %+v (%v)", d, err)
	}
	if err := r.eng.Cancel(context.Background(), acc.ID); err != nil {
		t.Fatal(err)
	}
	d = r.wait(acc.ID)
	if d.Status != "CANCELED" || !d.RolledBack || d.ErrorCode != deploy.CodeCanceled {
		t.Fatalf("canceled deployment: %s rolled_back=%v %s: %s", d.Status, d.RolledBack, d.ErrorCode, d.Error)
	}
	after := r.running(versions(base()))
	if after["com.test.c"] != before["com.test.c"] {
		t.Error("c restarted")
	}
	if err := r.eng.Cancel(context.Background(), acc.ID); !errors.Is(err, deploy.ErrConflict) {
		t.Errorf("cancel of a finished deployment: %v", err)
	}
	if err := r.eng.Cancel(context.Background(), "nope"); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("cancel of an unknown deployment: %v", err)
	}
}

func TestPreemptCancelsTheRunningAndQueuedDeployments(t *testing.T) {
	r := newRig(t)
	mustSucceed(t, r.deploy(manifest{comps: base()}))
	if _, err := r.eng.Submit(context.Background(), r.request(manifest{id: "slow", comps: slowSet(), healthTimeout: "10m"})); err != nil {
		t.Fatal(err)
	}
	queued := base()
	queued[2].version = "9.0.0"
	if _, err := r.eng.Submit(context.Background(), r.request(manifest{id: "queued", comps: queued})); err != nil {
		t.Fatal(err)
	}
	r.waitStep("slow", "start", "started")
	newer := base()
	newer[1].version = "3.0.0"
	req := r.request(manifest{id: "newer", comps: newer})
	req.Preempt = true
	if _, err := r.eng.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, r.wait("newer"))
	slow := r.wait("slow")
	if slow.Status != "CANCELED" || !slow.RolledBack || !strings.Contains(slow.Error, "preempted by deployment newer") {
		t.Errorf("preempted deployment: %s rolled_back=%v: %s", slow.Status, slow.RolledBack, slow.Error)
	}
	q := r.wait("queued")
	if q.Status != "CANCELED" || q.RolledBack || !strings.Contains(q.Error, "superseded") {
		t.Errorf("superseded deployment: %s rolled_back=%v: %s", q.Status, q.RolledBack, q.Error)
	}
	r.running(versions(newer))
}

func TestImportedFilesMustBeSignedToo(t *testing.T) {
	r := newRig(t)
	a := spec{name: "com.test.a", version: "1.0.0"}
	req := r.request(manifest{id: "imports", comps: []spec{a}})
	file := "com.test.a.recipe.toml"
	text := strings.Replace(string(req.Files[file]), "format = 1\n", "format = 1\nimports = [\"shared/common.toml\"]\n", 1)
	req.Files[file] = []byte(text)
	req.Files[file+".sig"] = r.sign(req.Files[file])
	req.Files["shared/common.toml"] = []byte("[resources]\nopen_files = 512\n")

	_, err := r.eng.Submit(context.Background(), req)
	var ve *deploy.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || !strings.Contains(ve.Problems[0].Message, "shared/common.toml: not signed") {
		t.Fatalf("unsigned import: %v", err)
	}
	req.Files["shared/common.toml.sig"] = r.sign(req.Files["shared/common.toml"])
	acc, err := r.eng.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, r.wait(acc.ID))
	r.running(versions([]spec{a}))
}

func TestStagingLeftByACrashIsRemovedAtStart(t *testing.T) {
	var stale string
	r := newRig(t, func(o *rigOptions) {
		o.before = func(dir string) {
			stale = filepath.Join(dir, ".deploy-staging-123")
			if err := os.MkdirAll(filepath.Join(stale, "sub"), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	})
	<-r.eng.Started()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale staging folder after start: %v", err)
	}
	// And a deployment leaves none behind.
	mustSucceed(t, r.deploy(manifest{comps: base()[:1]}))
	if left, _ := filepath.Glob(filepath.Join(r.dir, ".deploy-staging-*")); len(left) > 0 {
		t.Fatalf("staging folders left: %v", left)
	}
}

func TestCancelDuringADownloadThatHangs(t *testing.T) {
	hung := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case hung <- struct{}{}:
		default:
		}
		<-req.Context().Done() // never sends the body
	}))
	t.Cleanup(srv.Close)
	r := newRig(t, func(o *rigOptions) { o.allowHTTP = true })
	mustSucceed(t, r.deploy(manifest{comps: base()}))
	before := r.running(versions(base()))

	next := base()
	next[0].version = "2.0.0"
	next[0].artifact = &artifact{uri: srv.URL + "/big.bin", sha256: strings.Repeat("cd", 32)}
	acc, err := r.eng.Submit(context.Background(), r.request(manifest{id: "stuck", comps: next}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hung:
	case <-time.After(60 * time.Second):
		t.Fatal("the download never started")
	}
	d, err := r.eng.Get(context.Background(), acc.ID)
	if err != nil || d.Status != "IN_PROGRESS" || !strings.Contains(d.WaitingFor, "download") {
		t.Fatalf("while downloading: %s waiting for %q (%v)", d.Status, d.WaitingFor, err)
	}
	if err := r.eng.Cancel(context.Background(), acc.ID); err != nil {
		t.Fatal(err)
	}
	d = r.wait(acc.ID)
	if d.Status != "CANCELED" || d.RolledBack || d.ErrorCode != deploy.CodeCanceled {
		t.Fatalf("canceled download: %s rolled_back=%v %s: %s", d.Status, d.RolledBack, d.ErrorCode, d.Error)
	}
	after := r.running(versions(base()))
	for n, pid := range before {
		if after[n] != pid {
			t.Errorf("%s restarted by a deployment canceled while downloading", n)
		}
	}
}
