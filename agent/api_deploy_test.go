package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
)

// recipeText is a minimal process recipe whose script runs in the version
// folder; deps are hard dependencies.
func recipeText(name, version, script string, deps ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "format = 1\n[metadata]\nname = %q\nversion = %q\nkind = \"process\"\n", name, version)
	fmt.Fprintf(&b, "[lifecycle.run]\nscript = %q\nrestart_policy = \"on-failure\"\nstop_timeout = \"5s\"\n", script)
	for _, d := range deps {
		fmt.Fprintf(&b, "[[dependencies]]\nname = %q\nversion = \">=1.0.0\"\ntype = \"hard\"\n", d)
	}
	return b.String()
}

// manifestText names each component (name@version) with the recipe file
// <name>.recipe.toml.
func manifestText(id string, comps ...string) string {
	var b strings.Builder
	b.WriteString("format = 1\n[deployment]\n")
	if id != "" {
		fmt.Fprintf(&b, "id = %q\n", id)
	}
	b.WriteString("health_timeout = \"30s\"\n")
	for _, c := range comps {
		name, version, _ := strings.Cut(c, "@")
		fmt.Fprintf(&b, "[[components]]\nname = %q\nversion = %q\nrecipe = %q\n", name, version, name+".recipe.toml")
	}
	return b.String()
}

// deployAndWait submits req and waits, on the event stream, for the
// deployment to end; it returns the recorded deployment.
func (a *testAgent) deployAndWait(req api.DeploymentRequest) api.Deployment {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := a.client.Events(ctx, true)
	if err != nil {
		a.t.Fatal(err)
	}
	defer stream.Close()
	acc, err := a.client.Deploy(ctx, req)
	if err != nil {
		a.t.Fatalf("deploy: %v", err)
	}
	return a.waitOn(stream, acc.ID)
}

// waitDeployment waits for deployment id to end and returns it.
func (a *testAgent) waitDeployment(id string) api.Deployment {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := a.client.Events(ctx, true)
	if err != nil {
		a.t.Fatal(err)
	}
	defer stream.Close()
	return a.waitOn(stream, id)
}

// waitOn reads stream (opened before the check, so that nothing is missed)
// until deployment id has a final status.
func (a *testAgent) waitOn(stream *api.Stream[api.Event], id string) api.Deployment {
	a.t.Helper()
	for {
		d, err := a.client.Deployment(context.Background(), id)
		if err != nil {
			a.t.Fatal(err)
		}
		switch d.Status {
		case "SUCCEEDED", "FAILED", "CANCELED":
			return d
		}
		if _, err := stream.Next(); err != nil {
			a.t.Fatalf("waiting for deployment %s: %v\nlogs:\n%s", id, err, a.logs)
		}
	}
}

// A deployment applied over the socket runs its components; the component
// endpoints show them, their transitions and their logs; actions answer
// with the state reached.
func TestDeploymentThroughTheAPI(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req := api.DeploymentRequest{
		Manifest: manifestText("api-1", "com.example.base@1.0.0", "com.example.top@1.0.0"),
		Files: map[string][]byte{
			"com.example.base.recipe.toml": []byte(recipeText("com.example.base", "1.0.0", "echo base up; exec sleep 1000")),
			"com.example.top.recipe.toml":  []byte(recipeText("com.example.top", "1.0.0", "echo top up; exec sleep 1000", "com.example.base")),
		},
	}

	// A dry run plans and applies nothing.
	status, body := a.do("POST", api.PathDeployments, jsonBody(t, api.DeploymentRequest{Manifest: req.Manifest, Files: req.Files, DryRun: true}))
	if status != http.StatusOK {
		t.Fatalf("dry run: %d %s", status, body)
	}
	var plan api.DeploymentAccepted
	mustJSON(t, body, &plan)
	if len(plan.Plan) != 2 || plan.Plan[0].Action != "add" {
		t.Fatalf("plan = %+v, want two adds", plan.Plan)
	}
	if comps, _ := a.client.Components(ctx); len(comps) != 0 {
		t.Fatalf("a dry run started components: %+v", comps)
	}

	d := a.deployAndWait(req)
	if d.Status != "SUCCEEDED" || d.ID != "api-1" || len(d.Steps) == 0 {
		t.Fatalf("deployment = %+v\nlogs:\n%s", d, a.logs)
	}

	// GET /v1/components: exactly the documented fields.
	status, body = a.do("GET", api.PathComponents, nil)
	if status != 200 {
		t.Fatalf("components: %d %s", status, body)
	}
	var raw []map[string]any
	mustJSON(t, body, &raw)
	wantFields := []string{"name", "version", "kind", "state", "pid", "restarts", "since", "health", "last_error", "cpu_percent", "rss_bytes"}
	if len(raw) != 2 {
		t.Fatalf("components = %s", body)
	}
	for _, c := range raw {
		var keys []string
		for k := range c {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := slices.Clone(wantFields)
		slices.Sort(want)
		if !reflect.DeepEqual(keys, want) {
			t.Fatalf("component fields %v, want %v", keys, want)
		}
		if c["state"] != "RUNNING" || c["kind"] != "process" || c["pid"].(float64) <= 0 {
			t.Fatalf("component %v", c)
		}
	}

	// One component, with its transitions in order.
	detail, err := a.client.Component(ctx, "com.example.top")
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, tr := range detail.Transitions {
		path = append(path, tr.To)
	}
	if !slices.Contains(path, "STARTING") || path[len(path)-1] != "RUNNING" {
		t.Fatalf("transitions of top: %v", path)
	}

	// Logs: the tail, then a follower that sees a restart's new line.
	lines := readLogLines(t, a, "/v1/components/com.example.base/logs?tail=10")
	if len(lines) == 0 || lines[len(lines)-1].Text != "base up" || lines[len(lines)-1].Stream != "stdout" {
		t.Fatalf("logs of base: %+v", lines)
	}
	follow, err := a.client.Logs(ctx, "com.example.base", api.LogsOptions{Tail: 1, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	first := nextLine(t, follow)
	if first.Text != "base up" {
		t.Fatalf("first followed line %+v", first)
	}

	// Actions answer with the state reached; stopping base stops its hard
	// dependent too.
	base, err := a.client.Component(ctx, "com.example.base")
	if err != nil {
		t.Fatal(err)
	}
	basePid := base.Pid
	stopped, err := a.client.StopComponent(ctx, "com.example.base")
	if err != nil {
		t.Fatal(err)
	}
	if stopped.State != "STOPPED" || stopped.Pid != 0 {
		t.Fatalf("stop answered %+v", stopped)
	}
	if top, _ := a.client.Component(ctx, "com.example.top"); top.State == "RUNNING" {
		t.Fatalf("hard dependent still RUNNING after its dependency stopped")
	}
	if processAlive(basePid) {
		t.Errorf("pid %d of the stopped component still runs", basePid)
	}
	started, err := a.client.StartComponent(ctx, "com.example.base")
	if err != nil {
		t.Fatal(err)
	}
	if started.State != "RUNNING" && started.State != "STARTING" {
		t.Fatalf("start answered %+v", started)
	}
	again := nextLine(t, follow) // the follower sees the new run's line
	if again.Text != "base up" {
		t.Fatalf("line after the restart: %+v", again)
	}
	restarted, err := a.client.RestartComponent(ctx, "com.example.base")
	if err != nil {
		t.Fatal(err)
	}
	if restarted.Name != "com.example.base" || restarted.State == "" {
		t.Fatalf("restart answered %+v", restarted)
	}

	// The list of deployments has it, newest first.
	list, err := a.client.Deployments(ctx, 0)
	if err != nil || len(list) != 1 || list[0].ID != "api-1" {
		t.Fatalf("deployments = %+v, %v", list, err)
	}
}

// A manifest with several errors is refused with 422, every problem listed,
// and nothing recorded or started.
func TestInvalidManifestListsEveryProblem(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	manifest := `format = 1
[deployment]
failure_policy = "sometimes"
[[components]]
name = "com.example.a"
version = "1.0.0"
recipe = "a.recipe.toml"
[[components]]
name = "com.example.b"
version = "not-semver"
recipe = "b.recipe.toml"
`
	status, body := a.do("POST", api.PathDeployments, jsonBody(t, api.DeploymentRequest{Manifest: manifest}))
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422: %s", status, body)
	}
	e := apiError(t, body)
	if e.Code != api.CodeInvalid || len(e.Details) < 2 {
		t.Fatalf("error %+v: want VALIDATION_FAILED with every problem in details", e)
	}
	joined := strings.Join(e.Details, "\n")
	for _, want := range []string{"failure_policy", "version"} {
		if !strings.Contains(joined, want) {
			t.Errorf("details do not mention %s:\n%s", want, joined)
		}
	}
	if list, _ := a.client.Deployments(context.Background(), 0); len(list) != 0 {
		t.Fatalf("a refused manifest was recorded: %+v", list)
	}
}

func jsonBody(t testing.TB, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReader(string(b))
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func readLogLines(t testing.TB, a *testAgent, path string) []api.LogLine {
	t.Helper()
	status, body := a.do("GET", path, nil)
	if status != 200 {
		t.Fatalf("%s: %d %s", path, status, body)
	}
	var out []api.LogLine
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		var l api.LogLine
		mustJSON(t, sc.Bytes(), &l)
		out = append(out, l)
	}
	return out
}

func nextLine(t testing.TB, s *api.Stream[api.LogLine]) api.LogLine {
	t.Helper()
	l, err := s.Next()
	if err != nil {
		t.Fatalf("read followed log: %v", err)
	}
	return l
}

// processAlive reports whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) || err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}
