package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

func sampleComponents() []api.Component {
	now := fixedNow()
	return []api.Component{
		{Name: "com.example.db", Version: "1.2.0", Kind: "process", State: "RUNNING", Pid: 4242, Restarts: 0,
			Since: now.Add(-3 * time.Second), Health: "healthy", CPUPercent: 1.25, RSSBytes: 12 << 20},
		{Name: "com.example.app", Version: "2.0.0", Kind: "process", State: "BROKEN", Pid: 0, Restarts: 6,
			Since: now.Add(-90 * time.Minute), LastError: "exited with status 1 six times within 10m"},
	}
}

func TestComponentList(t *testing.T) {
	f := newFakeAgent(t)
	f.handle("GET /v1/components", 200, sampleComponents())
	cli := cliRun{sock: f.sock}

	r := cli.run(t, "component", "list")
	r.expect(t, exitOK, nil, none)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got:\n%s", r.stdout)
	}
	header := strings.Fields(lines[0])
	if !slices.Equal(header[:5], []string{"NAME", "VERSION", "KIND", "STATE", "HEALTH"}) {
		t.Errorf("header %q", lines[0])
	}
	for _, want := range []string{"com.example.db", "1.2.0", "RUNNING", "healthy", "4242", "3s ago", "1.2%", "12.0 MiB"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row 1 lacks %q: %s", want, lines[1])
		}
	}
	for _, want := range []string{"com.example.app", "BROKEN", "1h ago", "exited with status 1"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("row 2 lacks %q: %s", want, lines[2])
		}
	}
	// Aligned: every column starts at the same offset in each line.
	col := strings.Index(lines[0], "STATE")
	if strings.Index(lines[1], "RUNNING") != col || strings.Index(lines[2], "BROKEN") != col {
		t.Errorf("STATE column not aligned:\n%s", r.stdout)
	}

	r = cli.run(t, "-o", "json", "component", "list")
	r.expect(t, exitOK, nil, none)
	var got []api.Component
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, r.stdout)
	}
	if !reflect.DeepEqual(got, sampleComponents()) {
		t.Errorf("JSON output is not the wire list unchanged:\n%s", r.stdout)
	}
	var raw []map[string]any
	_ = json.Unmarshal([]byte(r.stdout), &raw)
	var keys []string
	for k := range raw[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"cpu_percent", "health", "kind", "last_error", "name", "pid", "restarts", "rss_bytes", "since", "state", "version"}
	if !slices.Equal(keys, want) {
		t.Errorf("JSON fields %v, want exactly the documented %v", keys, want)
	}
}

func TestComponentListEmptyIsAnEmptyJSONList(t *testing.T) {
	f := newFakeAgent(t)
	f.handle("GET /v1/components", 200, []api.Component{})
	cliRun{sock: f.sock}.run(t, "-o", "json", "component", "list").expect(t, exitOK, []string{"[]\n"}, none)
}

func TestComponentGet(t *testing.T) {
	f := newFakeAgent(t)
	now := fixedNow()
	detail := api.ComponentDetail{Component: sampleComponents()[0], Transitions: []api.Transition{
		{At: now.Add(-5 * time.Second), From: "NEW", To: "INSTALLED", Reason: "installed 1.2.0"},
		{At: now.Add(-4 * time.Second), From: "INSTALLED", To: "STARTING", Reason: "deployment d1"},
		{At: now.Add(-3 * time.Second), From: "STARTING", To: "RUNNING", Reason: "healthy"},
	}}
	f.handle("GET /v1/components/com.example.db", 200, detail)
	cli := cliRun{sock: f.sock}

	r := cli.run(t, "component", "get", "com.example.db")
	r.expect(t, exitOK, []string{"NAME        com.example.db\n", "STATE       RUNNING\n", "TRANSITIONS\n", "STARTING   RUNNING    healthy"}, none)
	if strings.Index(r.stdout, "installed 1.2.0") > strings.Index(r.stdout, "STARTING   RUNNING") {
		t.Errorf("transitions should be oldest first:\n%s", r.stdout)
	}

	r = cli.run(t, "-o", "json", "component", "get", "com.example.db")
	var got api.ComponentDetail
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, detail) {
		t.Errorf("JSON = %+v (%v), want the wire value", got, err)
	}
}

func TestComponentActions(t *testing.T) {
	f := newFakeAgent(t)
	f.mux.HandleFunc("POST /v1/components/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if name != "com.example.db" {
			replyJSON(w, 404, api.Error{Message: fmt.Sprintf("%s %s: supervisor: no such component", r.PathValue("action"), name), Code: api.CodeNotFound})
			return
		}
		state := map[string]string{"restart": "STARTING", "stop": "STOPPED", "start": "RUNNING"}[r.PathValue("action")]
		replyJSON(w, 200, api.Component{Name: name, Version: "1.2.0", State: state, Pid: 99})
	})
	cli := cliRun{sock: f.sock}
	for verb, state := range map[string]string{"restart": "STARTING", "stop": "STOPPED", "start": "RUNNING"} {
		cli.run(t, "component", verb, "com.example.db").expect(t, exitOK, []string{"NAME", "com.example.db  1.2.0    " + state}, none)
		if n := len(f.sent("POST", "/v1/components/com.example.db/"+verb)); n != 1 {
			t.Errorf("%s sent %d requests, want 1", verb, n)
		}
	}
	r := cli.run(t, "component", "restart", "com.example.nope")
	r.expect(t, exitError, none, []string{"Error: component restart: no component \"com.example.nope\" on this agent (keystonectl component list shows them) [NOT_FOUND]\n"})
	cli.run(t, "component", "restart").expect(t, exitUsage, none, []string{"takes one argument: NAME", "try 'keystonectl component restart --help'"})
}

func TestComponentLogs(t *testing.T) {
	f := newFakeAgent(t)
	f.mux.HandleFunc("GET /v1/components/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "com.example.db" {
			replyJSON(w, 404, api.Error{Message: "logs of " + r.PathValue("name") + ": supervisor: no such component", Code: api.CodeNotFound})
			return
		}
		w.Header().Set("Content-Type", api.ContentNDJSON)
		enc := json.NewEncoder(w)
		_ = enc.Encode(api.LogLine{At: fixedNow(), Stream: "stdout", Text: "tick 1"})
		_ = enc.Encode(api.LogLine{At: fixedNow(), Stream: "stderr", Text: "warn <html> & co"})
	})
	cli := cliRun{sock: f.sock}

	cli.run(t, "component", "logs", "com.example.db").expect(t, exitOK, []string{"tick 1\nwarn <html> & co\n"}, none)
	r := cli.run(t, "-o", "json", "component", "logs", "--tail", "5", "-f", "com.example.db")
	r.expect(t, exitOK, []string{`{"ts":"2026-11-25T10:00:00Z","stream":"stderr","text":"warn <html> & co"}` + "\n"}, none)
	sent := f.sent("GET", "/v1/components/com.example.db/logs")
	if len(sent) != 2 || sent[0].query != "" || sent[1].query != "follow=1&tail=5" {
		t.Errorf("log requests %+v", sent)
	}
	cli.run(t, "component", "logs", "--tail", "-1", "x").expect(t, exitUsage, none, []string{"--tail must be 0 or more"})
	cli.run(t, "component", "logs", "com.example.nope").expect(t, exitError, none, []string{"[NOT_FOUND]"})
}

func TestAgentUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	r := cliRun{sock: sock}.run(t, "component", "list")
	r.expect(t, exitError, none, []string{"Error: list components: cannot reach the agent", sock, "is keystone-agent running? --socket or KEYSTONE_SOCKET"})
}

// With -o json a failure is a JSON document on stdout too, with the
// agent's code, or a code of its own when the agent said nothing.
func TestJSONErrorsAreDocumentsOnStdout(t *testing.T) {
	f := newFakeAgent(t)
	f.handle("GET /v1/components/com.example.nope", 404, api.Error{Message: "component com.example.nope: not found", Code: api.CodeNotFound})
	decode := func(r result) errorDocument {
		t.Helper()
		var doc errorDocument
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("stdout is not one JSON document (%v):\n%s", err, r.stdout)
		}
		return doc
	}
	r := cliRun{sock: f.sock}.run(t, "-o", "json", "component", "get", "com.example.nope")
	if doc := decode(r); r.code != exitError || doc.Code != api.CodeNotFound || doc.Error != "component com.example.nope: not found" {
		t.Errorf("refused: exit %d, %+v", r.code, doc)
	}
	if !strings.Contains(r.stderr, "[NOT_FOUND]") {
		t.Errorf("the error left stderr: %q", r.stderr)
	}
	r = cliRun{sock: filepath.Join(t.TempDir(), "none.sock")}.run(t, "-o", "json", "component", "list")
	if doc := decode(r); r.code != exitError || doc.Code != codeUnavailable {
		t.Errorf("unreachable: exit %d, %+v", r.code, doc)
	}
	r = cliRun{sock: f.sock}.run(t, "-o", "json", "component", "restart")
	if doc := decode(r); r.code != exitUsage || doc.Code != codeUsage {
		t.Errorf("usage: exit %d, %+v", r.code, doc)
	}
	// A command that printed its result (the problems) adds no second document.
	bad := filepath.Join(t.TempDir(), "bad.recipe.toml")
	if err := os.WriteFile(bad, []byte("format = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = cliRun{sock: f.sock}.run(t, "-o", "json", "recipe", "validate", bad)
	var problems []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &problems); err != nil || len(problems) == 0 || r.code != exitError {
		t.Errorf("recipe validate: exit %d, %v:\n%s", r.code, err, r.stdout)
	}
}
