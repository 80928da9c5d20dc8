package recipes_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

func mustParseRecipe(t *testing.T, path string) *recipes.Recipe {
	t.Helper()
	r, err := recipes.ParseRecipeFile(path)
	if err != nil {
		t.Fatalf("parse %s:\n%v", path, err)
	}
	return r
}

func TestParseRecipeSpecProcess(t *testing.T) {
	path := filepath.Join("testdata", "valid", "spec-process.recipe.toml")
	r := mustParseRecipe(t, path)

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != path || string(r.Raw) != string(raw) {
		t.Errorf("Source/Raw = %q / %d bytes, want %q / the file's %d bytes", r.Source, len(r.Raw), path, len(raw))
	}
	if want := []string{filepath.Join("testdata", "valid", "common.toml")}; !reflect.DeepEqual(r.ImportedFiles, want) {
		t.Errorf("ImportedFiles = %q, want %q", r.ImportedFiles, want)
	}
	if r.Imports != nil {
		t.Errorf("Imports = %q after merging, want nil", r.Imports)
	}
	if r.Metadata != (recipes.Metadata{Name: "com.example.hello", Version: "1.2.0", Kind: recipes.KindProcess,
		Description: "Prints heartbeats", Publisher: "Example Ltd"}) {
		t.Errorf("Metadata = %+v", r.Metadata)
	}
	if len(r.Artifacts) != 2 || !r.Artifacts[0].Unpack || r.Artifacts[1].URI != "repo:hello/1.2.0/hello.conf" {
		t.Errorf("Artifacts = %+v", r.Artifacts)
	}
	if s := r.Lifecycle.Install; s == nil || s.Script != "chmod +x ./hello" || s.Timeout.Duration != 2*time.Minute {
		t.Errorf("Install = %+v", s)
	}
	run := r.Lifecycle.Run
	if run == nil {
		t.Fatal("Run is nil")
	}
	if run.Command != "./hello" || run.RestartPolicy != recipes.RestartAlways || run.StopSignal != "SIGTERM" ||
		run.StopTimeout.Duration != 10*time.Second || run.WorkingDir != "." {
		t.Errorf("Run = %+v", run)
	}
	if run.RestartBackoff.Initial.Duration != time.Second || run.RestartBackoff.Max.Duration != 5*time.Minute ||
		run.MaxRestarts.Count != 5 || run.MaxRestarts.Window.Duration != 10*time.Minute {
		t.Errorf("restart settings = %+v %+v", run.RestartBackoff, run.MaxRestarts)
	}
	if want := []string{"--interval", "${config.interval_seconds}", "--data", "${component.work_dir}/data"}; !reflect.DeepEqual(run.Args, want) {
		t.Errorf("Args = %q, want %q (unrendered)", run.Args, want)
	}
	if h := run.Health; h == nil || h.Check != "http://127.0.0.1:8080/healthz" || h.Interval.Duration != 10*time.Second ||
		h.Timeout.Duration != 3*time.Second || h.StartPeriod.Duration != 5*time.Second || h.FailureThreshold != 3 {
		t.Errorf("Health = %+v", h)
	}
	if nnp := r.Security.NoNewPrivileges; nnp == nil || !*nnp {
		t.Errorf("NoNewPrivileges = %v, want true", nnp)
	}
	// The recipe wins over its import; what only the import says is kept.
	if r.Security.SeccompProfile != "default" || r.Resources.CPUQuota != 40 || r.Resources.PidsLimit != 256 {
		t.Errorf("Security/Resources = %+v %+v", r.Security, r.Resources)
	}
	if r.Resources.MemoryLimit != 128<<20 || r.Resources.OpenFiles != 4096 {
		t.Errorf("Resources = %+v", r.Resources)
	}
	wantDeps := []recipes.Dependency{
		{Name: "com.example.sidecar", Version: ">=1.0.0, <2.0.0", Type: recipes.DependencyHard},
		{Name: "com.example.logs", Type: recipes.DependencySoft},
	}
	if !reflect.DeepEqual(r.Dependencies, wantDeps) {
		t.Errorf("Dependencies = %+v, want %+v", r.Dependencies, wantDeps)
	}
	wantSecrets := map[string]recipes.Secret{
		"DB_PASS":   {From: "env", Name: "KEYSTONE_DB_PASS"},
		"API_TOKEN": {From: "file", Path: "/etc/keystone/secrets/token"},
	}
	if !reflect.DeepEqual(r.Secrets, wantSecrets) {
		t.Errorf("Secrets = %+v", r.Secrets)
	}
	if r.Plugin != nil {
		t.Errorf("Plugin = %+v on a process", r.Plugin)
	}
}

func TestParseRecipeSpecPlugin(t *testing.T) {
	r := mustParseRecipe(t, filepath.Join("testdata", "valid", "spec-plugin.recipe.toml"))
	p := r.Plugin
	if p == nil {
		t.Fatal("Plugin is nil")
	}
	if p.Runtime != "wasm" || p.Command != "./pos-collect.wasm" || p.Interval.Duration != 30*time.Second ||
		p.Jitter.Duration != 2*time.Second || p.Timeout.Duration != 5*time.Second || !p.State || p.MemoryLimit != 16<<20 {
		t.Errorf("Plugin = %+v", p)
	}
	if p.Mapping.Prefix != "pos_" || p.Mapping.Labels["store_id"] != "${config.store_id}" || p.Mapping.Rename["tx"] != "transactions_total" {
		t.Errorf("Mapping = %+v", p.Mapping)
	}
	if r.Lifecycle.Run != nil {
		t.Errorf("Run = %+v on a plugin", r.Lifecycle.Run)
	}
	if r.Lifecycle.Install.Timeout.Duration != recipes.DefaultInstallTimeout {
		t.Errorf("install timeout = %v, want the default %v", r.Lifecycle.Install.Timeout, recipes.DefaultInstallTimeout)
	}
}

func TestDefaults(t *testing.T) {
	r := mustParseRecipe(t, filepath.Join("testdata", "valid", "minimal.recipe.toml"))
	run := r.Lifecycle.Run
	got := map[string]any{
		"restart_policy":    run.RestartPolicy,
		"backoff.initial":   run.RestartBackoff.Initial.Duration,
		"backoff.max":       run.RestartBackoff.Max.Duration,
		"max_restarts":      run.MaxRestarts.Count,
		"window":            run.MaxRestarts.Window.Duration,
		"stop_signal":       run.StopSignal,
		"stop_timeout":      run.StopTimeout.Duration,
		"working_dir":       run.WorkingDir,
		"no_new_privileges": r.Security.NoNewPrivileges == nil, // nil means true
	}
	want := map[string]any{
		"restart_policy":    recipes.RestartOnFailure,
		"backoff.initial":   time.Second,
		"backoff.max":       5 * time.Minute,
		"max_restarts":      5,
		"window":            10 * time.Minute,
		"stop_signal":       "SIGTERM",
		"stop_timeout":      10 * time.Second,
		"working_dir":       ".",
		"no_new_privileges": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("process defaults:\n got %v\nwant %v", got, want)
	}

	const withSections = `format = 1
[metadata]
name = "com.example.d"
version = "1.0.0"
kind = "process"
[lifecycle.install]
script = "true"
[lifecycle.shutdown]
script = "true"
[lifecycle.run]
command = "./d"
restart_backoff = { initial = "0s" }
max_restarts = { count = 0 }
[lifecycle.run.health]
check = "tcp://127.0.0.1:80"
[[dependencies]]
name = "com.example.x"
`
	r, err := recipes.ParseRecipe("d.recipe.toml", []byte(withSections))
	if err != nil {
		t.Fatal(err)
	}
	run = r.Lifecycle.Run
	if run.RestartBackoff.Initial.Duration != 0 || run.RestartBackoff.Max.Duration != 5*time.Minute {
		t.Errorf("explicit initial 0s must stay 0 and max default: %+v", run.RestartBackoff)
	}
	if run.MaxRestarts.Count != 0 || run.MaxRestarts.Window.Duration != 10*time.Minute {
		t.Errorf("explicit count 0 must stay 0 and window default: %+v", run.MaxRestarts)
	}
	h := run.Health
	if h.Interval.Duration != 10*time.Second || h.Timeout.Duration != 3*time.Second || h.StartPeriod.Duration != 0 || h.FailureThreshold != 3 {
		t.Errorf("health defaults = %+v", h)
	}
	if r.Lifecycle.Install.Timeout.Duration != 2*time.Minute || r.Lifecycle.Shutdown.Timeout.Duration != 10*time.Second {
		t.Errorf("script timeouts = %v, %v", r.Lifecycle.Install.Timeout, r.Lifecycle.Shutdown.Timeout)
	}
	if r.Dependencies[0].Type != recipes.DependencyHard || r.Dependencies[0].Version != "" {
		t.Errorf("dependency defaults = %+v", r.Dependencies[0])
	}

	const plugin = `format = 1
[metadata]
name = "com.example.p"
version = "1.0.0"
kind = "plugin"
[plugin]
command = "./p"
`
	r, err = recipes.ParseRecipe("p.recipe.toml", []byte(plugin))
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Plugin; p.Runtime != "exec" || p.Interval.Duration != 30*time.Second || p.Timeout.Duration != 5*time.Second || p.Jitter.Duration != 0 {
		t.Errorf("plugin defaults = %+v", p)
	}

	m, err := recipes.ParseManifest("m.toml", []byte("format = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Deployment.FailurePolicy != recipes.FailureRollback || m.Deployment.HealthTimeout.Duration != 60*time.Second || len(m.Components) != 0 {
		t.Errorf("manifest defaults = %+v", m)
	}
}

func TestParseManifestSpec(t *testing.T) {
	path := filepath.Join("testdata", "valid", "spec.deployment.toml")
	m, err := recipes.ParseManifestFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &recipes.Manifest{
		Format: 1,
		Deployment: recipes.DeploymentSpec{ID: "rollout-42", FailurePolicy: recipes.FailureRollback,
			HealthTimeout: recipes.Duration{Duration: time.Minute}},
		Components: []recipes.ComponentRef{
			{Name: "com.example.hello", Version: "1.2.0", Recipe: "recipes/hello.recipe.toml",
				Config: map[string]any{"interval_seconds": int64(10)}},
			{Name: "com.example.pos", Version: "1.0.0"},
		},
		Source: path,
	}
	if !reflect.DeepEqual(recipes.WithoutPositions(m), want) {
		t.Errorf("manifest =\n%+v\nwant\n%+v", m, want)
	}
}

func TestParseFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.recipe.toml")
	if _, err := recipes.ParseRecipeFile(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ParseRecipeFile(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := recipes.ParseManifestFile(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ParseManifestFile(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestParseWithoutName(t *testing.T) {
	_, err := recipes.ParseRecipe("", []byte("format = 1\n[metadata]\nname = \"x\"\n"))
	var list recipes.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %T %v, want ErrorList", err, err)
	}
	want := []string{
		`3:1: metadata.name: "x" is not a component name: lowercase dotted words like "com.example.hello" (^[a-z0-9]+(\.[a-z0-9-]+)+$)`,
		`2:2: metadata.kind: required; must be process or plugin`,
		`2:2: metadata.version: required`,
	}
	got := strings.Split(err.Error(), "\n")
	// Errors are in line order: the header's (2:2) come first.
	want = []string{want[1], want[2], want[0]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var fe *recipes.FieldError
	if !errors.As(err, &fe) || fe.Path != "metadata.kind" || fe.Line != 2 {
		t.Errorf("errors.As(*FieldError) = %+v", fe)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    recipes.FieldError
		want string
	}{
		{recipes.FieldError{File: "a.toml", Line: 14, Col: 3, Path: "lifecycle.run.restart_policy", Message: "bad"},
			"a.toml:14:3: lifecycle.run.restart_policy: bad"},
		{recipes.FieldError{File: "a.toml", Path: "metadata.name", Message: "required"}, "a.toml: metadata.name: required"},
		{recipes.FieldError{File: "a.toml", Line: 2, Col: 5, Message: "syntax"}, "a.toml:2:5: syntax"},
		{recipes.FieldError{File: "a.toml", Line: 2, Path: "x", Message: "m"}, "a.toml:2: x: m"},
		{recipes.FieldError{Line: 2, Col: 1, Path: "x", Message: "m"}, "2:1: x: m"},
		{recipes.FieldError{Path: "x", Message: "m"}, "x: m"},
		{recipes.FieldError{Message: "m"}, "m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
	list := recipes.ErrorList{{File: "a", Path: "x", Message: "one"}, {File: "a", Path: "y", Message: "two"}}
	if got := list.Error(); got != "a: x: one\na: y: two" {
		t.Errorf("ErrorList.Error() = %q", got)
	}
}
