package runner

import (
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

func TestExitStatusReason(t *testing.T) {
	for _, tc := range []struct {
		st   ExitStatus
		want string
		ok   bool
	}{
		{ExitStatus{Code: 0}, "exited with code 0", true},
		{ExitStatus{Code: 2}, "exited with code 2", false},
		{ExitStatus{Code: -1, Signal: "SIGSEGV"}, "killed by SIGSEGV", false},
		{ExitStatus{Code: -1, Signal: "SIGKILL", OOMKilled: true}, "OOM-killed (memory_limit reached), killed by SIGKILL", false},
		{ExitStatus{Code: 0, OOMKilled: true}, "OOM-killed (memory_limit reached), exited with code 0", false},
		{ExitStatus{Code: -1, Signal: "SIGTERM", Stopped: true}, "stopped, killed by SIGTERM", false},
		{ExitStatus{Code: 0, Stopped: true}, "stopped, exited with code 0", true},
		{ExitStatus{Code: -1, Signal: "SIGKILL", Stopped: true, Forced: true}, "stopped: SIGKILL after stop_timeout", false},
		{ExitStatus{Code: -1, Err: errors.New("no child")}, "lost: no child", false},
	} {
		if got := tc.st.Reason(); got != tc.want {
			t.Errorf("%+v: reason %q, want %q", tc.st, got, tc.want)
		}
		if tc.st.Success() != tc.ok {
			t.Errorf("%+v: success = %v", tc.st, !tc.ok)
		}
	}
}

func TestSpecValidateReportsEveryProblem(t *testing.T) {
	err := ProcessSpec{Component: "a/b", Command: "rel", Script: "x", Dir: "rel", Env: []string{"NOVALUE"}, PidsLimit: -1}.validate()
	if !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"path element", "exclusive", "dir \"rel\"", "NOVALUE", "negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if err := (ProcessSpec{Component: "ok", Command: "/bin/true"}).validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnvironIsExactlyWhatWasAsked(t *testing.T) {
	s := ProcessSpec{Env: []string{"A=1", "PATH=/opt/bin", "B=2", "A=3"}, Secrets: map[string]string{"Z": "s", "B": "secret"}}
	got := s.environ(nil)
	want := []string{"PATH=/opt/bin", "A=3", "B=secret", "Z=s"}
	if !slices.Equal(got, want) {
		t.Fatalf("environ = %q, want %q", got, want)
	}
	got = ProcessSpec{Env: []string{"USER=x"}}.environ(&Account{User: "svc", Home: "/var/lib/svc"})
	want = []string{"USER=x", defaultPath, "HOME=/var/lib/svc", "LOGNAME=svc"}
	if !slices.Equal(got, want) {
		t.Fatalf("environ = %q, want %q", got, want)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM, " SIGINT ": syscall.SIGINT, "HUP": syscall.SIGHUP, "SIGQUIT": syscall.SIGQUIT} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "SIGNOPE", "15"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}

func processRecipe() *recipes.Recipe {
	no := false
	return &recipes.Recipe{
		Metadata: recipes.Metadata{Name: "com.example.hello", Version: "1.2.0", Kind: recipes.KindProcess},
		Lifecycle: recipes.Lifecycle{
			Run: &recipes.Run{
				Command: "./hello", Args: []string{"--interval", "10"}, Env: map[string]string{"Z": "last", "LOG_LEVEL": "info"},
				WorkingDir: "data", StopSignal: "SIGINT", StopTimeout: recipes.Duration{Duration: 3 * time.Second},
			},
			Shutdown: &recipes.Script{Script: "echo bye", Timeout: recipes.Duration{Duration: 2 * time.Second}},
		},
		Security:  recipes.Security{NoNewPrivileges: &no},
		Resources: recipes.Resources{CPUQuota: 40, MemoryLimit: 128 << 20, PidsLimit: 256, OpenFiles: 4096},
	}
}

func TestSpecFromRecipe(t *testing.T) {
	r := processRecipe()
	spec, err := SpecFromRecipe(r, RecipeContext{
		VersionDir: "/var/lib/keystone/components/com.example.hello/1.2.0", WorkDir: "/var/lib/keystone/work/com.example.hello",
		DefaultRunAs: "keystone:keystone", Secrets: map[string]string{"DB_PASS": "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ProcessSpec{
		Component: "com.example.hello", Version: "1.2.0",
		Command: "/var/lib/keystone/components/com.example.hello/1.2.0/hello", Args: []string{"--interval", "10"},
		Env: []string{"LOG_LEVEL=info", "Z=last"}, Secrets: map[string]string{"DB_PASS": "x"},
		Dir: "/var/lib/keystone/work/com.example.hello/data", RunAs: "keystone:keystone",
		OpenFiles: 4096, CPUQuotaPercent: 40, MemoryLimitBytes: 128 << 20, PidsLimit: 256,
		Seccomp: SeccompDefault, // seccomp_profile left out
	}
	if spec.String() != want.String() || spec.Dir != want.Dir || spec.NoNewPrivileges || spec.OpenFiles != 4096 ||
		spec.CPUQuotaPercent != 40 || spec.MemoryLimitBytes != 128<<20 || spec.PidsLimit != 256 || !slices.Equal(spec.Env, want.Env) || spec.Secrets["DB_PASS"] != "x" {
		t.Fatalf("spec = %s dir=%s %+v\nwant %s", spec, spec.Dir, spec, want)
	}

	r.Security = recipes.Security{RunAs: "svc"} // no_new_privileges unset = true
	r.Lifecycle.Run.WorkingDir = "../elsewhere"
	if _, err := SpecFromRecipe(r, RecipeContext{VersionDir: "/v", WorkDir: "/w"}); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("escaping working_dir: %v", err)
	}
	r.Lifecycle.Run.WorkingDir = ""
	spec, err = SpecFromRecipe(r, RecipeContext{VersionDir: "/v", WorkDir: "/w", DefaultRunAs: "other"})
	if err != nil || !spec.NoNewPrivileges || spec.RunAs != "svc" || spec.Dir != "/w" {
		t.Fatalf("spec = %+v, %v", spec, err)
	}
	r.Security.SeccompProfile = "path:/etc/keystone/seccomp/x.json"
	if spec, err = SpecFromRecipe(r, RecipeContext{VersionDir: "/v", WorkDir: "/w"}); err != nil || spec.Seccomp != r.Security.SeccompProfile {
		t.Fatalf("seccomp_profile %q: spec has %q, %v", r.Security.SeccompProfile, spec.Seccomp, err)
	}

	opts, err := StopOptionsFromRecipe(processRecipe())
	if err != nil || opts != (StopOptions{Signal: syscall.SIGINT, Timeout: 3 * time.Second, ShutdownScript: "echo bye", ShutdownTimeout: 2 * time.Second}) {
		t.Fatalf("stop options = %+v, %v", opts, err)
	}
	plugin := &recipes.Recipe{Metadata: recipes.Metadata{Name: "p", Kind: recipes.KindPlugin}}
	if _, err := SpecFromRecipe(plugin, RecipeContext{VersionDir: "/v", WorkDir: "/w"}); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("plugin recipe: %v", err)
	}
}
