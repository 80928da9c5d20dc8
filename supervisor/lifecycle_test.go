package supervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/proctest"
	"github.com/keystone-edge/keystone/recipes"
)

func TestInstallScript(t *testing.T) {
	r := newRig(t, nil, Config{})
	okDir, badDir, slowDir := t.TempDir(), t.TempDir(), t.TempDir()
	ok := proc("com.example.ok", "exec sleep 1000", func(rc *recipes.Recipe) {
		rc.Lifecycle.Install = &recipes.Script{Script: `pwd > installed; printf %s "$TOKEN" > token`, Timeout: d("10s")}
	})
	ok.VersionDir, ok.Secrets = okDir, map[string]string{"TOKEN": "s3cret"}
	bad := proc("com.example.bad", "exec sleep 1000", func(rc *recipes.Recipe) {
		rc.Lifecycle.Install = &recipes.Script{Script: "echo starting; echo \"chmod: cannot access './hello'\" >&2; exit 3", Timeout: d("10s")}
	})
	bad.VersionDir = badDir
	slow := proc("com.example.slow", "exec sleep 1000", func(rc *recipes.Recipe) {
		rc.Lifecycle.Install = &recipes.Script{Script: "echo still going >&2; exec sleep 1000", Timeout: d("200ms")}
	})
	slow.VersionDir = slowDir
	if err := r.sup.Apply(context.Background(), []*Component{ok, bad, slow}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(ok.Name(), StateInstalled, "installed")
	r.w.waitFor(ok.Name(), StateRunning, "started")
	got, err := os.ReadFile(filepath.Join(okDir, "installed"))
	if err != nil || strings.TrimSpace(string(got)) != okDir {
		t.Fatalf("install ran in %q (%v), want %s", got, err, okDir)
	}
	if tok, _ := os.ReadFile(filepath.Join(okDir, "token")); string(tok) != "s3cret" {
		t.Fatalf("install script did not get the secret: %q", tok)
	}

	e := r.w.waitFor(bad.Name(), StateErrored, "install failed: install script exited with status 3: chmod: cannot access './hello'")
	if e.From != StateNew.String() {
		t.Fatalf("install failure from %s", e.From)
	}
	r.w.waitFor(slow.Name(), StateErrored, "install failed: install script timed out: still going")
	err = r.sup.WaitReady(timeout(t, 30*time.Second), []string{ok.Name(), bad.Name()})
	if !errors.Is(err, ErrComponentFailed) || !strings.Contains(err.Error(), "com.example.bad") {
		t.Fatalf("WaitReady: %v", err)
	}
	if st, _ := r.sup.Component(bad.Name()); st.Pid != 0 || st.Restarts != 0 {
		t.Fatalf("a component whose install failed was started: %+v", st)
	}

	// Redeployed with a script that passes, it installs again and runs.
	if err := os.WriteFile(filepath.Join(badDir, "hello"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad2 := *bad
	rc := *bad.Recipe
	rc.Lifecycle.Install = &recipes.Script{Script: "chmod +x ./hello", Timeout: d("10s")}
	bad2.Recipe = &rc
	if err := r.sup.Apply(context.Background(), []*Component{ok, &bad2, slow}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(bad.Name(), StateRunning, "started")
}

// What an install script writes is in the component's log, where
// keystonectl component logs shows it, with the agent's note of how it
// ended.
func TestInstallScriptOutputGoesToTheComponentLog(t *testing.T) {
	run, lm := newRunnerWithLogs(t, t.TempDir(), newCgroupRoot(t))
	r := newRig(t, nil, Config{Launcher: &ProcessLauncher{Runner: run, AllowRoot: true}, Logs: lm})
	bad := proc("com.example.setup", "exec sleep 1000", func(rc *recipes.Recipe) {
		rc.Lifecycle.Install = &recipes.Script{Script: "echo fetching firmware; echo 'E: no network' >&2; exit 4", Timeout: d("10s")}
	})
	bad.VersionDir = t.TempDir()
	if err := r.sup.Apply(context.Background(), []*Component{bad}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(bad.Name(), StateErrored, "install failed: install script exited with status 4: E: no network")
	lg, err := lm.Log(bad.Name())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lg.Tail(0) {
		got = append(got, l.String())
	}
	// stdout and stderr are two pipes: their lines may interleave either way.
	if len(got) != 4 || got[0] != "[keystone] install script started" || got[3] != "[keystone] install script exited with status 4" ||
		!slices.Contains(got, "fetching firmware") || !slices.Contains(got, "[stderr] E: no network") {
		t.Errorf("component log:\n%s", strings.Join(got, "\n"))
	}
}

func TestShutdownScriptRunsBeforeTheStopSignal(t *testing.T) {
	run, lm := newRunnerWithLogs(t, t.TempDir(), newCgroupRoot(t))
	r := newRig(t, nil, Config{Launcher: &ProcessLauncher{Runner: run, AllowRoot: true}})
	dir := t.TempDir()
	c := proc("com.example.polite", `trap 'if test -f bye; then echo after > order; else echo before > order; fi; exit 0' TERM; echo armed; sleep 1000 & wait`,
		func(rc *recipes.Recipe) {
			rc.Lifecycle.Shutdown = &recipes.Script{Script: "echo bye > bye", Timeout: d("10s")}
		})
	c.VersionDir, c.WorkDir = dir, dir
	if err := r.sup.Apply(context.Background(), []*Component{c}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(c.Name(), StateRunning, "started")
	// RUNNING comes at exec; the trap is set a moment later.
	waitLogLine(t, lm, c.Name(), "armed")
	if _, err := r.sup.StopComponent(context.Background(), c.Name()); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(c.Name(), StateStopped, "stop requested")
	got, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil || strings.TrimSpace(string(got)) != "after" {
		t.Fatalf("the process saw SIGTERM %q the shutdown script (%v)", got, err)
	}
}

func TestApplyReplacesAndRemoves(t *testing.T) {
	r := newRig(t, nil, Config{})
	a := proc("com.example.a", "exec sleep 1000")
	b := proc("com.example.b", "exec sleep 1000", dependsOn("com.example.a", recipes.DependencyHard))
	gone := proc("com.example.gone", "exec sleep 1000")
	if err := r.sup.Apply(context.Background(), []*Component{a, b, gone}); err != nil {
		t.Fatal(err)
	}
	if err := r.sup.WaitReady(timeout(t, 30*time.Second), []string{a.Name(), b.Name(), gone.Name()}); err != nil {
		t.Fatal(err)
	}
	oldA, goneP := r.pid(t, a.Name()), r.pid(t, gone.Name())

	// a goes to 2.0.0: b (hard dependent) stops first, a is replaced, then
	// both run again; gone is removed.
	a2 := proc("com.example.a", "exec sleep 1000", func(rc *recipes.Recipe) { rc.Metadata.Version = "2.0.0" })
	r.w.log, r.w.used = nil, map[int]bool{}
	if err := r.sup.Apply(context.Background(), []*Component{a2, b}); err != nil {
		t.Fatal(err)
	}
	r.w.waitFor(a.Name(), StateStopped, "replaced by com.example.a 2.0.0")
	r.w.waitFor(gone.Name(), StateStopped, "removed from the deployment")
	before(t, r.w, b.Name(), StateStopped, a.Name(), StateStopping)
	if err := r.sup.WaitReady(timeout(t, 30*time.Second), []string{a.Name(), b.Name()}); err != nil {
		t.Fatal(err)
	}
	st, _ := r.sup.Component(a.Name())
	if st.Version != "2.0.0" || st.Pid == oldA {
		t.Fatalf("a not replaced: %+v", st)
	}
	if _, err := r.sup.Component(gone.Name()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed component still listed: %v", err)
	}
	waitGone(t, oldA)
	waitGone(t, goneP)
	names := []string{}
	for _, s := range r.sup.Snapshot() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "com.example.a,com.example.b" {
		t.Fatalf("snapshot lists %v", names)
	}
}

func TestSnapshotMeasuresProcesses(t *testing.T) {
	r := newRig(t, nil, Config{Sampler: NewProcSampler(100 * time.Millisecond)})
	busy := proc("com.example.busy", "while :; do :; done")
	idle := proc("com.example.idle", "exec sleep 1000")
	if err := r.sup.Apply(context.Background(), []*Component{busy, idle}); err != nil {
		t.Fatal(err)
	}
	if err := r.sup.WaitReady(timeout(t, 30*time.Second), []string{busy.Name(), idle.Name()}); err != nil {
		t.Fatal(err)
	}
	// The first snapshot primes the CPU deltas; the busy loop then accrues
	// CPU time: wait for a few clock ticks' worth, and a sampling interval.
	r.sup.Snapshot()
	pid, from := r.pid(t, busy.Name()), time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for c0 := proctest.CPUSeconds(pid); proctest.CPUSeconds(pid) < c0+0.05 || time.Since(from) < 100*time.Millisecond; <-tick.C {
		if time.Since(from) > 10*time.Second {
			t.Fatal("busy loop used no CPU")
		}
	}
	snap := r.sup.Snapshot()
	if len(snap) != 2 || snap[0].Name != busy.Name() {
		t.Fatalf("snapshot: %+v", snap)
	}
	if snap[0].CPUPercent <= 0 || snap[0].RSSBytes == 0 || snap[1].RSSBytes == 0 {
		t.Fatalf("not measured: %+v", snap)
	}
	if snap[1].CPUPercent >= snap[0].CPUPercent {
		t.Fatalf("sleep uses more CPU than a busy loop: %+v", snap)
	}
}
