package supervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
)

func requireRootAgent(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: refusing root needs an agent that is root; run the tests as root (CI does)")
	}
}

// withInstall gives a component an install script.
func withInstall(script string) func(*recipes.Recipe) {
	return func(r *recipes.Recipe) { r.Lifecycle.Install = &recipes.Script{Script: script, Timeout: d("10s")} }
}

func withRunAs(runAs string) func(*recipes.Recipe) {
	return func(r *recipes.Recipe) { r.Security.RunAs = runAs }
}

// Install scripts and cmd: checks are programs of the component too: with
// security.allow_root = false a root agent runs them as the component's
// user, and refuses them, unstarted, when that user is root by any
// spelling or there is none.
func TestShellScriptsNeverRunAsRootWithoutAllowRoot(t *testing.T) {
	requireRootAgent(t)
	const whoami = "id -u >&2; exit 3"
	for _, tc := range []struct {
		runAs, def string
		allow      bool
		uid        string // "" = refused
	}{
		{"", "", false, ""},
		{"00", "", false, ""},
		{"0000000000", "", false, ""},
		{"4294967296", "", false, ""},
		{"+0", "", false, ""},
		{"root", "", false, ""},
		{"", "00", false, ""},
		{"", "-0", false, ""},
		{"nobody", "", false, "65534"},
		{"", "nobody", false, "65534"},
		{"", "", true, "0"}, // as the agent, as before
	} {
		c := proc("com.example.sh", "exec sleep 1000", withRunAs(tc.runAs), withInstall(whoami))
		u := ShellUser{DefaultRunAs: tc.def, AllowRoot: tc.allow}
		err := ShellInstaller{ShellUser: u}.Install(context.Background(), c)
		_, detail := (&Checker{ShellUser: u}).Probe(timeout(t, 10*time.Second), c, "cmd:"+whoami)
		var se *ScriptError
		if !errors.As(err, &se) {
			t.Fatalf("%+v: install err = %v", tc, err)
		}
		if tc.uid == "" {
			if se.ExitCode != -1 || se.Stderr != "" || !strings.Contains(detail, "run_as") {
				t.Errorf("%+v: ran anyway: install %v, check %q", tc, err, detail)
			}
			continue
		}
		if se.Stderr != tc.uid || !strings.HasSuffix(detail, ": "+tc.uid) {
			t.Errorf("%+v: install ran as %q, check as %q; want uid %s", tc, se.Stderr, detail, tc.uid)
		}
	}
}

// A root agent with default_run_as = "" runs a component that names no
// run_as only with security.allow_root = true.
func TestProcessLauncherNeedsAllowRootForNoRunAs(t *testing.T) {
	requireRootAgent(t)
	run := newRunner(t, t.TempDir(), newCgroupRoot(t))
	dir := t.TempDir()
	c := proc("com.example.norunas", "touch ran; exec sleep 1000")
	c.VersionDir, c.WorkDir = dir, dir
	_, err := (&ProcessLauncher{Runner: run}).Launch(context.Background(), c)
	if !errors.Is(err, runner.ErrRoot) {
		t.Fatalf("allow_root = false: err = %v, want runner.ErrRoot", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "ran")); serr == nil {
		t.Fatal("the refused process ran")
	}
	h, err := (&ProcessLauncher{Runner: run, AllowRoot: true}).Launch(context.Background(), c)
	if err != nil {
		t.Fatalf("allow_root = true: %v", err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
