package recipes_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/keystone-edge/keystone/recipes"
)

// exampleSet parses examples/deployment.toml and the recipes it names.
func exampleSet(t *testing.T) (*recipes.Manifest, map[string]*recipes.Recipe) {
	t.Helper()
	m, err := recipes.ParseManifestFile(filepath.Join("examples", "deployment.toml"))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]*recipes.Recipe{}
	for _, ref := range m.Components {
		r := mustParseRecipe(t, filepath.Join("examples", ref.Recipe))
		if r.Metadata.Name != ref.Name || r.Metadata.Version != ref.Version {
			t.Errorf("%s names %s@%s, its recipe is %s@%s", ref.Recipe, ref.Name, ref.Version, r.Metadata.Name, r.Metadata.Version)
		}
		set[ref.Name] = r
	}
	return m, set
}

func TestExamplesFormAConsistentDeployment(t *testing.T) {
	m, set := exampleSet(t)
	versions := map[string]string{}
	for _, ref := range m.Components {
		versions[ref.Name] = ref.Version
	}
	for name, r := range set {
		for _, d := range r.Dependencies {
			v, ok := versions[d.Name]
			if !ok {
				t.Errorf("%s depends on %s, which the deployment does not list", name, d.Name)
				continue
			}
			c, err := semver.NewConstraint(d.Version)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Check(semver.MustParse(v)) {
				t.Errorf("%s needs %s %s, the deployment has %s", name, d.Name, d.Version, v)
			}
		}
	}
	http := set["com.example.hello-http"]
	if http == nil || http.Metadata.Kind != recipes.KindProcess || http.Lifecycle.Run.Health == nil {
		t.Fatalf("com.example.hello-http must be a process with a health check: %+v", http)
	}
	worker := set["com.example.worker"]
	if worker == nil || len(worker.Dependencies) != 1 || worker.Dependencies[0].Name != "com.example.hello-http" ||
		worker.Dependencies[0].Type != recipes.DependencyHard {
		t.Fatalf("com.example.worker must depend hard on com.example.hello-http: %+v", worker)
	}
	plugin := set["com.example.sysload"]
	if plugin == nil || plugin.Metadata.Kind != recipes.KindPlugin || plugin.Plugin == nil {
		t.Fatalf("com.example.sysload must be a plugin: %+v", plugin)
	}
	// All three import the shared settings.
	for name, r := range set {
		if len(r.ImportedFiles) != 1 || filepath.Base(r.ImportedFiles[0]) != "common.toml" || r.Resources.PidsLimit != 64 {
			t.Errorf("%s: ImportedFiles %q, pids_limit %d; want common.toml merged", name, r.ImportedFiles, r.Resources.PidsLimit)
		}
	}
}

// renderExample renders one example the way the agent would: recipe
// defaults < deployment config.
func renderExample(t *testing.T, m *recipes.Manifest, r *recipes.Recipe, extra map[string]any) *recipes.Recipe {
	t.Helper()
	var deployment map[string]any
	for _, ref := range m.Components {
		if ref.Name == r.Metadata.Name {
			deployment = ref.Config
		}
	}
	out, err := r.Render(recipes.EffectiveConfig(r.Config.Defaults, deployment, extra), recipes.Vars{
		DeviceID: "pos-12", WorkDir: "/var/lib/keystone/work/" + r.Metadata.Name,
		VersionDir: "/var/lib/keystone/components/" + r.Metadata.Name + "/" + r.Metadata.Version,
	})
	if err != nil {
		t.Fatalf("render %s: %v", r.Metadata.Name, err)
	}
	return out
}

func TestExampleHTTPServiceRenders(t *testing.T) {
	m, set := exampleSet(t)
	run := renderExample(t, m, set["com.example.hello-http"], nil).Lifecycle.Run
	if run.Command != "/usr/local/libexec/keystone-examples/hello-http" {
		t.Errorf("command = %q", run.Command)
	}
	if want := []string{"-listen", "127.0.0.1:8080"}; strings.Join(run.Args, " ") != strings.Join(want, " ") {
		t.Errorf("args = %q, want %q", run.Args, want)
	}
	if run.Env["GREETING"] != "hello from the examples from pos-12" {
		t.Errorf("GREETING = %q (deployment config must override the default)", run.Env["GREETING"])
	}
	if run.Health.Check != "http://127.0.0.1:8080/healthz" {
		t.Errorf("health check = %q", run.Health.Check)
	}
}

// TestExampleWorkerScriptRuns runs the worker's rendered script with
// /bin/sh and waits for its third tick: the "$${n}" escapes must reach the
// shell as "${n}".
func TestExampleWorkerScriptRuns(t *testing.T) {
	m, set := exampleSet(t)
	run := renderExample(t, m, set["com.example.worker"], map[string]any{"interval_seconds": int64(0)}).Lifecycle.Run
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", run.Script)
	cmd.Dir = t.TempDir()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	want := []string{
		"tick 1 on pos-12, service on port 8080",
		"tick 2 on pos-12, service on port 8080",
		"tick 3 on pos-12, service on port 8080",
	}
	for _, w := range want {
		if !sc.Scan() {
			t.Fatalf("worker output ended before %q: %v", w, sc.Err())
		}
		if sc.Text() != w {
			t.Fatalf("worker printed %q, want %q", sc.Text(), w)
		}
	}
}

// pluginOutput is the answer a plugin writes on stdout for one run.
type pluginOutput struct {
	Metrics []struct {
		Name   string            `json:"name"`
		Type   string            `json:"type"`
		Value  *float64          `json:"value"`
		Help   string            `json:"help"`
		Labels map[string]string `json:"labels"`
	} `json:"metrics"`
	State map[string]any `json:"state"`
}

func runSysload(t *testing.T, input string) pluginOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", filepath.Join("examples", "sysload", "collect.sh"))
	cmd.Stdin = strings.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("collect.sh: %v\n%s", err, stderr.String())
	}
	var out pluginOutput
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("collect.sh wrote invalid JSON: %v\n%s", err, b)
	}
	return out
}

func TestExamplePluginAnswersTheContract(t *testing.T) {
	_, set := exampleSet(t)
	mapping := set["com.example.sysload"].Plugin.Mapping
	input := `{"component":"com.example.sysload","version":"1.0.0","device_id":"pos-12",` +
		`"config":{"site":"lab"},"state":{"runs":41},"secrets":{}}`
	out := runSysload(t, input)

	metricName := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	seen := map[string]float64{}
	for _, m := range out.Metrics {
		if m.Value == nil {
			t.Errorf("metric %s has no value", m.Name)
			continue
		}
		if m.Type != "gauge" && m.Type != "counter" {
			t.Errorf("metric %s has type %q", m.Name, m.Type)
		}
		name := m.Name
		if r, ok := mapping.Rename[name]; ok {
			name = r
		}
		if exported := mapping.Prefix + name; !metricName.MatchString(exported) {
			t.Errorf("exported name %q is not a Prometheus metric name", exported)
		}
		seen[m.Name] = *m.Value
	}
	for _, name := range []string{"load1", "load5", "load15", "uptime_seconds", "memory_available_bytes", "runs_total"} {
		if _, ok := seen[name]; !ok {
			t.Errorf("metric %s missing from %v", name, seen)
		}
	}
	if seen["uptime_seconds"] <= 0 || seen["memory_available_bytes"] <= 0 {
		t.Errorf("uptime %v and available memory %v must be positive", seen["uptime_seconds"], seen["memory_available_bytes"])
	}
	if seen["runs_total"] != 42 || fmt.Sprint(out.State["runs"]) != "42" {
		t.Errorf("runs_total %v, state %v; want 42 after a state of 41", seen["runs_total"], out.State)
	}
	if first := runSysload(t, `{"component":"com.example.sysload","state":null}`); fmt.Sprint(first.State["runs"]) != "1" {
		t.Errorf("first run state = %v, want runs 1", first.State)
	}
}
