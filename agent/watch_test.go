package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
)

// waitComponent waits, on the event stream, until the named component's
// detail satisfies ok, and returns it.
func (a *testAgent) waitComponent(name string, ok func(api.ComponentDetail) bool) api.ComponentDetail {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := a.client.Events(ctx, true)
	if err != nil {
		a.t.Fatal(err)
	}
	defer stream.Close()
	for {
		if d, err := a.client.Component(ctx, name); err == nil && ok(d) {
			return d
		}
		if _, err := stream.Next(); err != nil {
			d, _ := a.client.Component(context.Background(), name)
			a.t.Fatalf("waiting for %s: %v; last seen %+v\nlogs:\n%s", name, err, d, a.logs)
		}
	}
}

func runningAt(version string) func(api.ComponentDetail) bool {
	return func(d api.ComponentDetail) bool { return d.State == "RUNNING" && d.Version == version }
}

// The watch folder is applied at start and on every change; a folder that
// did not change is not applied again; a broken recipe leaves what runs
// alone and says why in a warning event.
func TestWatchFolderHotReload(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(dir, "svc.recipe.toml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(recipe, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(recipeText("com.example.svc", "1.0.0", "echo v1; exec sleep 1000"))
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a recipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := agentConfig(t, "[dev]\nwatch_dir = "+tomlString(dir))
	a := startAgent(t, cfg, Options{})

	a.waitComponent("com.example.svc", runningAt("1.0.0"))
	a.seen.wait(t, "applied watch folder", 1)

	// An edit: a new version with a new script.
	write(recipeText("com.example.svc", "1.1.0", "echo v2; exec sleep 1000"))
	a.seen.wait(t, "applied watch folder", 2)
	v2 := a.waitComponent("com.example.svc", runningAt("1.1.0"))
	// RUNNING comes as the process starts; its first line may come after.
	follow, err := a.client.Logs(t.Context(), "com.example.svc", api.LogsOptions{Tail: 1, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	for l := nextLine(t, follow); l.Text != "v2"; l = nextLine(t, follow) {
		if l.Text != "v1" {
			t.Fatalf("the new version's output: %+v", l)
		}
	}
	follow.Close()

	// The same bytes written again: not applied a second time.
	write(recipeText("com.example.svc", "1.1.0", "echo v2; exec sleep 1000"))
	a.seen.wait(t, "watch folder unchanged since last applied", 1)
	list, err := a.client.Deployments(context.Background(), 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("deployments after an unchanged save: %d, %v; want 2", len(list), err)
	}
	for _, d := range list {
		if d := a.waitDeployment(d.ID); d.Status != "SUCCEEDED" {
			t.Errorf("deployment %s: %s %s", d.ID, d.Status, d.Error)
		}
	}

	// A broken recipe: a warning event naming the file and the problem,
	// nothing submitted, the running version untouched.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := a.client.Events(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	write(strings.Replace(recipeText("com.example.svc", "1.2.0", "exec sleep 1000"), `restart_policy = "on-failure"`, `restart_policy = "sometimes"`, 1))
	for {
		e, err := stream.Next()
		if err != nil {
			t.Fatalf("no warning for the broken recipe: %v\nlogs:\n%s", err, a.logs)
		}
		if e.Kind == api.EventWarning && strings.Contains(e.Reason, "watch folder not applied") {
			if !strings.Contains(e.Reason, "svc.recipe.toml") || !strings.Contains(e.Reason, "restart_policy") {
				t.Fatalf("warning does not name the file and the problem: %q", e.Reason)
			}
			break
		}
	}
	now, err := a.client.Component(ctx, "com.example.svc")
	if err != nil {
		t.Fatal(err)
	}
	if now.State != "RUNNING" || now.Version != "1.1.0" || now.Pid != v2.Pid {
		t.Fatalf("after a broken recipe: %+v, want 1.1.0 RUNNING as pid %d", now.Component, v2.Pid)
	}
	if list, _ := a.client.Deployments(ctx, 0); len(list) != 2 {
		t.Fatalf("a broken folder was submitted: %d deployments", len(list))
	}

	// Fixed again: applied.
	write(recipeText("com.example.svc", "1.2.0", "echo v3; exec sleep 1000"))
	a.waitComponent("com.example.svc", runningAt("1.2.0"))
}

// A watch folder with a recipe signed by no trusted key is refused when
// unsigned recipes are not allowed; the refusal is a warning, not a crash.
func TestWatchFolderChecksSignatures(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "svc.recipe.toml"),
		[]byte(recipeText("com.example.svc", "1.0.0", "exec sleep 1000")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := agentConfig(t, "[dev]\nwatch_dir = "+tomlString(dir))
	cfg.Trust.AllowUnsigned = false
	a := startAgent(t, cfg, Options{})
	a.seen.wait(t, "watch folder not applied; what runs is left as it is", 1)
	if !a.logs.contains("watch folder not applied", "svc.recipe.toml") {
		t.Fatalf("the refusal does not name the recipe:\n%s", a.logs)
	}
	if comps, err := a.client.Components(context.Background()); err != nil || len(comps) != 0 {
		t.Fatalf("an unsigned recipe runs: %+v %v", comps, err)
	}
	if err := a.client.Health(context.Background()); err != nil {
		t.Fatalf("agent unhealthy after a refused watch folder: %v", err)
	}
}

func tomlString(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }
