package main

import (
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

// writeTree writes files (path relative to dir → content) and returns dir.
func writeTree(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const testManifest = `format = 1
[deployment]
id = "d1"

[[components]]
name    = "com.example.a"
version = "1.0.0"
recipe  = "recipes/a.recipe.toml"

[[components]]
name    = "com.example.b"
version = "1.0.0"
recipe  = "b.recipe.toml"

[[components]]
name    = "com.example.fromrepo"
version = "3.0.0"
`

// manifestTree is a manifest whose recipes import files in nested folders
// and where only some recipes are signed.
func manifestTree(t *testing.T) (dir string, files map[string]string) {
	files = map[string]string{
		"deployment.toml":           testManifest,
		"recipes/a.recipe.toml":     "format = 1\nimports = [\"common.toml\"]\n[metadata]\nname = \"com.example.a\"\n",
		"recipes/a.recipe.toml.sig": "c2lnbmF0dXJl\n",
		"recipes/common.toml":       "imports = [\"more/limits.toml\"]\n[resources]\npids_limit = 64\n",
		"recipes/more/limits.toml":  "[resources]\nopen_files = 1024\n",
		"b.recipe.toml":             "format = 1\n[metadata]\nname = \"com.example.b\"\n",
		"unrelated.recipe.toml":     "not sent",
	}
	return writeTree(t, t.TempDir(), files), files
}

func TestDeployApplySendsTheManifestWithItsFiles(t *testing.T) {
	dir, files := manifestTree(t)
	f := newFakeAgent(t)
	acc := api.DeploymentAccepted{ID: "d1", Plan: []api.PlanItem{{Component: "com.example.a", Action: "add", ToVersion: "1.0.0"}}}
	f.handle("POST /v1/deployments", 202, acc)
	cli := cliRun{sock: f.sock}
	manifest := filepath.Join(dir, "deployment.toml")

	r := cli.run(t, "deploy", "apply", "-f", manifest)
	r.expect(t, exitOK, []string{"deployment d1 accepted\n", "PLAN\n", "com.example.a  add", "follow it with: keystonectl deploy status d1\n"}, none)

	sent := f.sent("POST", "/v1/deployments")
	if len(sent) != 1 {
		t.Fatalf("%d deployment requests, want 1", len(sent))
	}
	var req api.DeploymentRequest
	if err := json.Unmarshal(sent[0].body, &req); err != nil {
		t.Fatal(err)
	}
	if req.Manifest != testManifest || req.Preempt || req.DryRun {
		t.Errorf("request manifest/flags: %+v", req)
	}
	want := map[string][]byte{}
	for _, name := range []string{"recipes/a.recipe.toml", "recipes/a.recipe.toml.sig", "recipes/common.toml", "recipes/more/limits.toml", "b.recipe.toml"} {
		want[name] = []byte(files[name])
	}
	if !reflect.DeepEqual(req.Files, want) {
		t.Errorf("files sent: %v, want %v", slices.Sorted(maps.Keys(req.Files)), slices.Sorted(maps.Keys(want)))
	}

	r = cli.run(t, "-o", "json", "deploy", "apply", "-f", manifest, "--preempt")
	var got api.DeploymentAccepted
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, acc) {
		t.Errorf("JSON output %q, want the wire answer", r.stdout)
	}
	_ = json.Unmarshal(f.sent("POST", "/v1/deployments")[1].body, &req)
	if !req.Preempt {
		t.Error("--preempt was not sent")
	}
}

func TestDeployApplyRefusedListsEveryProblem(t *testing.T) {
	dir, _ := manifestTree(t)
	f := newFakeAgent(t)
	problems := []string{
		"deployment.toml:3:1: deployment.failure_policy: must be one of rollback, keep",
		"recipes/a.recipe.toml:4:1: lifecycle.run: required for kind = process",
		"components[2]: com.example.fromrepo: not in the repository",
	}
	f.handle("POST /v1/deployments", 422, api.Error{Message: "the deployment has 3 problems", Code: api.CodeInvalid, Details: problems})
	r := cliRun{sock: f.sock}.run(t, "deploy", "apply", "-f", filepath.Join(dir, "deployment.toml"), "--wait")
	r.expect(t, exitError, none, append([]string{"refused: the deployment has 3 problems [VALIDATION_FAILED]\n"}, problems...))

	// An agent that puts the problems in its message too: the code stays on
	// the first line and nothing is listed twice.
	f2 := newFakeAgent(t)
	f2.handle("POST /v1/deployments", 422, api.Error{Message: "invalid deployment: 3 problems:\n  " + strings.Join(problems, "\n  "), Code: api.CodeInvalid, Details: problems})
	r = cliRun{sock: f2.sock}.run(t, "deploy", "apply", "-f", filepath.Join(dir, "deployment.toml"))
	want := "refused: invalid deployment: 3 problems: [VALIDATION_FAILED]\n  " + strings.Join(problems, "\n  ") + "\n"
	if !strings.HasSuffix(r.stderr, want) || r.code != exitError {
		t.Errorf("stderr %q, want it to end with %q", r.stderr, want)
	}
	if n := len(f.sent("GET", "/v1/deployments/d1")); n != 0 {
		t.Errorf("a refused deployment was waited for (%d polls)", n)
	}
}

func TestDeployApplyUnreadableFilesAreAllListedAndNothingIsSent(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{"deployment.toml": testManifest})
	f := newFakeAgent(t)
	r := cliRun{sock: f.sock}.run(t, "deploy", "apply", "-f", filepath.Join(dir, "deployment.toml"))
	r.expect(t, exitError, none, []string{
		"cannot read the files it names:",
		"components[0].recipe: " + filepath.Join(dir, "recipes/a.recipe.toml") + ": no such file or directory",
		"components[1].recipe: " + filepath.Join(dir, "b.recipe.toml") + ": no such file or directory",
	})
	if n := len(f.sent("POST", "/v1/deployments")); n != 0 {
		t.Errorf("%d requests sent for a manifest whose files are missing", n)
	}
}

func TestDeployApplyBrokenManifestIsLeftToTheAgent(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{"deployment.toml": "format = 1\n[deployment\n"})
	f := newFakeAgent(t)
	f.handle("POST /v1/deployments", 422, api.Error{Message: "deployment.toml:2:12: expected ]", Code: api.CodeInvalid})
	cliRun{sock: f.sock}.run(t, "deploy", "apply", "-f", filepath.Join(dir, "deployment.toml")).
		expect(t, exitError, none, []string{"deployment.toml:2:12: expected ] [VALIDATION_FAILED]"})
	var req api.DeploymentRequest
	_ = json.Unmarshal(f.sent("POST", "/v1/deployments")[0].body, &req)
	if req.Manifest != "format = 1\n[deployment\n" || req.Files != nil {
		t.Errorf("sent %+v", req)
	}
}

// scripted serves GET /v1/deployments/{id} from a list of views, one per
// request, repeating the last; and GET /v1/events?follow=1 when events is
// set, with one event per view served.
type scripted struct {
	mu    sync.Mutex
	views []api.Deployment
	calls int
}

func (s *scripted) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := min(s.calls, len(s.views)-1)
	s.calls++
	d := s.views[i]
	s.mu.Unlock()
	replyJSON(w, 200, d)
}

func progressViews() []api.Deployment {
	now := fixedNow()
	since := now.Add(-3 * time.Second)
	base := api.Deployment{ID: "d1", CreatedAt: now.Add(-10 * time.Second), UpdatedAt: now}
	queued, running, done := base, base, base
	queued.Status = statusQueued
	running.Status = statusInProgress
	running.Steps = []api.Step{
		{Seq: 1, Name: "fetch", Status: "done", At: now.Add(-8 * time.Second)},
		{Seq: 2, Name: "start", Component: "com.example.a", Status: "started", At: since},
	}
	running.WaitingFor, running.Since = "com.example.a RUNNING and healthy", &since
	done.Status = statusSucceeded
	done.Steps = append(slices.Clone(running.Steps), api.Step{Seq: 3, Name: "commit", Status: "done", At: now})
	done.FinishedAt = &now
	return []api.Deployment{queued, running, done}
}

func TestDeployApplyWaitSucceeds(t *testing.T) {
	dir, _ := manifestTree(t)
	for _, events := range []bool{false, true} {
		name := "polling"
		if events {
			name = "events"
		}
		t.Run(name, func(t *testing.T) {
			f := newFakeAgent(t)
			f.handle("POST /v1/deployments", 202, api.DeploymentAccepted{ID: "d1"})
			s := &scripted{views: progressViews()}
			f.mux.HandleFunc("GET /v1/deployments/d1", s.serve)
			if events {
				f.mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", api.ContentNDJSON)
					for range 5 {
						_ = json.NewEncoder(w).Encode(api.Event{Kind: api.EventDeployment, Deployment: "d1", Step: "start"})
						w.(http.Flusher).Flush()
					}
					<-r.Context().Done()
				})
			}
			r := cliRun{sock: f.sock, terminal: true}.run(t, "deploy", "apply", "-f", filepath.Join(dir, "deployment.toml"), "--wait")
			r.expect(t, exitOK, []string{"ID        d1\n", "STATUS    SUCCEEDED\n", "DURATION  10.0s\n", "STEPS\n", "commit"}, nil)
			// The progress line was drawn on stderr and cleared before the result.
			for _, want := range []string{"\r\x1b[Kd1  IN_PROGRESS  ", "start com.example.a: waiting for com.example.a RUNNING and healthy (3s)"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("progress lacks %q: %q", want, r.stderr)
				}
			}
			if !strings.HasSuffix(r.stderr, "\r\x1b[K") {
				t.Errorf("progress not cleared at the end: %q", r.stderr)
			}
		})
	}
}

func TestDeployApplyWaitIsQuietWithoutATerminalAndInJSON(t *testing.T) {
	dir, _ := manifestTree(t)
	f := newFakeAgent(t)
	f.handle("POST /v1/deployments", 202, api.DeploymentAccepted{ID: "d1"})
	s := &scripted{views: progressViews()}
	f.mux.HandleFunc("GET /v1/deployments/d1", s.serve)
	manifest := filepath.Join(dir, "deployment.toml")

	cliRun{sock: f.sock}.run(t, "deploy", "apply", "-f", manifest, "--wait").expect(t, exitOK, []string{"SUCCEEDED"}, none)
	s.calls = 0
	r := cliRun{sock: f.sock, terminal: true}.run(t, "-o", "json", "deploy", "apply", "-f", manifest, "--wait")
	r.expect(t, exitOK, nil, none)
	var got api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, progressViews()[2]) {
		t.Errorf("JSON output %q (%v), want the final deployment unchanged", r.stdout, err)
	}
}

func TestDeployApplyWaitFailedExitsOne(t *testing.T) {
	dir, _ := manifestTree(t)
	f := newFakeAgent(t)
	f.handle("POST /v1/deployments", 202, api.DeploymentAccepted{ID: "d1"})
	failed := progressViews()[1]
	failed.Status, failed.RolledBack = statusFailed, true
	failed.Error, failed.ErrorCode = "com.example.a was not RUNNING within 60s", "HEALTH_TIMEOUT"
	f.handle("GET /v1/deployments/d1", 200, failed)
	r := cliRun{sock: f.sock}.run(t, "deploy", "apply", "-f", filepath.Join(dir, "deployment.toml"), "--wait")
	r.expect(t, exitError, []string{"STATUS   FAILED (rolled back)\n", "ERROR    com.example.a was not RUNNING within 60s [HEALTH_TIMEOUT]\n"},
		[]string{"Error: deployment d1 FAILED: com.example.a was not RUNNING within 60s [HEALTH_TIMEOUT]; the previous deployment was restored\n"})
	if strings.Contains(r.stdout, "WAITING FOR") {
		t.Errorf("a finished deployment shows what it waits for:\n%s", r.stdout)
	}
}

func TestDeployApplyWaitTimesOut(t *testing.T) {
	dir, _ := manifestTree(t)
	f := newFakeAgent(t)
	f.handle("POST /v1/deployments", 202, api.DeploymentAccepted{ID: "d1"})
	f.handle("GET /v1/deployments/d1", 200, progressViews()[1]) // forever in progress
	r := cliRun{sock: f.sock}.run(t, "deploy", "apply", "-f", filepath.Join(dir, "deployment.toml"), "--wait", "--timeout", "300ms")
	r.expect(t, exitError, none, []string{"Error: timed out waiting for deployment d1; it is still running: keystonectl deploy status d1\n"})
}

func TestDeployPlan(t *testing.T) {
	dir, _ := manifestTree(t)
	f := newFakeAgent(t)
	plan := api.DeploymentAccepted{Plan: []api.PlanItem{
		{Component: "com.example.a", Action: "update", FromVersion: "1.0.0", ToVersion: "1.1.0", Reason: "version 1.0.0 -> 1.1.0"},
		{Component: "com.example.b", Action: "unchanged", FromVersion: "1.0.0", ToVersion: "1.0.0"},
		{Component: "com.example.old", Action: "remove", FromVersion: "0.9.0"},
	}}
	f.handle("POST /v1/deployments", 200, plan)
	manifest := filepath.Join(dir, "deployment.toml")
	cli := cliRun{sock: f.sock}

	r := cli.run(t, "deploy", "plan", "-f", manifest)
	r.expect(t, exitOK, []string{
		"COMPONENT        ACTION     FROM   TO     REASON\n",
		"com.example.a    update     1.0.0  1.1.0  version 1.0.0 -> 1.1.0\n",
		"com.example.old  remove     0.9.0  -      -\n",
		"2 change(s)\n",
		"apply it with: keystonectl --socket " + f.sock + " deploy apply -f " + manifest + " --wait\n",
	}, none)
	if !strings.HasSuffix(r.stdout, "--wait\n") {
		t.Errorf("the plan should end with the command that applies it:\n%s", r.stdout)
	}
	var req api.DeploymentRequest
	_ = json.Unmarshal(f.sent("POST", "/v1/deployments")[0].body, &req)
	if !req.DryRun || len(req.Files) != 5 {
		t.Errorf("plan request: dry_run %v, %d files", req.DryRun, len(req.Files))
	}

	r = cli.run(t, "-o", "json", "deploy", "plan", "-f", manifest)
	var got api.DeploymentAccepted
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, plan) {
		t.Errorf("JSON plan %q", r.stdout)
	}
}

func TestDeployStatusAndList(t *testing.T) {
	f := newFakeAgent(t)
	views := progressViews()
	running := views[1]
	running.ID = "d2"
	older := views[2]
	older.CreatedAt = older.CreatedAt.Add(-time.Hour)
	f.handle("GET /v1/deployments", 200, []api.Deployment{running, older})
	f.handle("GET /v1/deployments/d2", 200, running)
	f.handle("GET /v1/deployments/d1", 200, older)
	cli := cliRun{sock: f.sock}

	r := cli.run(t, "deploy", "status")
	r.expect(t, exitOK, []string{
		"ID           d2\n", "STATUS       IN_PROGRESS\n",
		"STEP         start com.example.a, since 2026-11-25 09:59:57 (3s ago)\n",
		"WAITING FOR  com.example.a RUNNING and healthy, since 2026-11-25 09:59:57 (3s ago)\n",
		"STEPS\n", "1    09:59:52.000  8s ago  fetch  -              done",
	}, none)
	cli.run(t, "deploy", "status", "d1").expect(t, exitOK, []string{"ID        d1\n", "STATUS    SUCCEEDED\n"}, none)

	r = cli.run(t, "-o", "json", "deploy", "status", "d2")
	var got api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, running) {
		t.Errorf("JSON status %q", r.stdout)
	}

	r = cli.run(t, "deploy", "list")
	r.expect(t, exitOK, []string{"ID  STATUS       ROLLED BACK  CREATED  DURATION  ERROR\n", "d2  IN_PROGRESS  no           10s ago  10.0s     -\n", "d1  SUCCEEDED    no           1h ago"}, none)
	cli.run(t, "deploy", "list", "--limit", "5").expect(t, exitOK, nil, none)
	if q := f.sent("GET", "/v1/deployments"); q[len(q)-1].query != "limit=5" {
		t.Errorf("--limit sent as %q", q[len(q)-1].query)
	}

	f.handle("GET /v1/deployments/nope", 404, api.Error{Message: "no deployment nope", Code: api.CodeNotFound})
	cli.run(t, "deploy", "status", "nope").expect(t, exitError, none,
		[]string{"Error: no deployment nope (keystonectl deploy list shows them) [NOT_FOUND]\n"})
	empty := newFakeAgent(t)
	empty.handle("GET /v1/deployments", 200, []api.Deployment{})
	cliRun{sock: empty.sock}.run(t, "deploy", "status").expect(t, exitError, none, []string{"no deployments yet"})
}

func TestDeployCancelAndRollback(t *testing.T) {
	f := newFakeAgent(t)
	views := progressViews()
	f.handle("POST /v1/deployments/d1/cancel", 202, views[1])
	canceled := views[1]
	canceled.Status, canceled.RolledBack = statusCanceled, true
	s := &scripted{views: []api.Deployment{views[1], canceled}}
	f.mux.HandleFunc("GET /v1/deployments/d1", s.serve)
	f.handle("POST /v1/deployments/done/cancel", 409, api.Error{Message: "cancel done: deployment done already finished SUCCEEDED", Code: api.CodeConflict})
	f.handle("POST /v1/deployments/rollback", 202, api.DeploymentAccepted{ID: "rollback-7"})
	f.handle("GET /v1/deployments/rollback-7", 200, api.Deployment{ID: "rollback-7", Status: statusSucceeded})
	cli := cliRun{sock: f.sock}

	cli.run(t, "deploy", "cancel", "d1").expect(t, exitOK, []string{"cancel requested: deployment d1 stops at its next safe point and rolls back\n"}, none)
	cli.run(t, "deploy", "cancel", "d1", "--wait").expect(t, exitOK, []string{"STATUS   CANCELED (rolled back)\n"}, none)
	cli.run(t, "deploy", "cancel", "done").expect(t, exitError, none, []string{"already finished SUCCEEDED [CONFLICT]"})

	cli.run(t, "deploy", "rollback").expect(t, exitOK, []string{"deployment rollback-7 accepted\n"}, none)
	cli.run(t, "deploy", "rollback", "--wait").expect(t, exitOK, []string{"ID       rollback-7\n", "STATUS   SUCCEEDED\n"}, none)
}

func TestDeployUsageErrors(t *testing.T) {
	cli := cliRun{sock: "/nonexistent.sock"}
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"deploy", "apply"}, "-f FILE is required"},
		{[]string{"deploy", "plan"}, "-f FILE is required"},
		{[]string{"deploy", "apply", "-f", "x.toml", "--timeout", "1m"}, "--timeout only applies with --wait"},
		{[]string{"deploy", "apply", "-f", "x.toml", "--wait", "--timeout", "-1s"}, "--timeout must be 0 or more"},
		{[]string{"deploy", "apply", "-f", "x.toml", "--timeout", "soon"}, `invalid argument "soon"`},
		{[]string{"deploy", "status", "a", "b"}, "takes at most one argument: ID"},
		{[]string{"deploy", "cancel"}, "takes one argument: ID"},
		{[]string{"deploy", "list", "extra"}, "takes no arguments"},
		{[]string{"deploy", "apply", "-f", "x.toml", "extra"}, "takes no arguments"},
	}
	for _, tc := range cases {
		cli.run(t, tc.args...).expect(t, exitUsage, none, []string{tc.stderr, "try 'keystonectl deploy "})
	}
}

// The agent takes only clean file names; a manifest may still write
// "./x.recipe.toml" or "sub/../x.recipe.toml" for the file beside it.
func TestDeployApplySendsCleanFileNames(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{
		"deployment.toml": "format = 1\n[[components]]\nname = \"com.example.b\"\nversion = \"1.0.0\"\nrecipe = \"./sub/../b.recipe.toml\"\n",
		"b.recipe.toml":   "format = 1\nimports = [\"./common.toml\"]\n",
		"common.toml":     "[resources]\npids_limit = 64\n",
	})
	f := newFakeAgent(t)
	f.handle("POST /v1/deployments", 202, api.DeploymentAccepted{ID: "d1"})
	cliRun{sock: f.sock}.run(t, "deploy", "apply", "-f", filepath.Join(dir, "deployment.toml")).expect(t, exitOK, nil, none)
	var req api.DeploymentRequest
	if err := json.Unmarshal(f.sent("POST", "/v1/deployments")[0].body, &req); err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(req.Files)), []string{"b.recipe.toml", "common.toml"}; !reflect.DeepEqual(got, want) {
		t.Errorf("files sent as %q, want %q", got, want)
	}
}
