package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

// serveUnix starts h on a Unix socket in a temporary folder and returns a
// client for it. The server stops when the test ends.
func serveUnix(t *testing.T, h http.Handler) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	c := api.NewClient(sock)
	t.Cleanup(c.Close)
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestClientDecodesEveryAnswer(t *testing.T) {
	since := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	comp := api.Component{Name: "com.example.a", Version: "1.0.0", Kind: "process", State: "RUNNING", Pid: 42, Restarts: 1, Since: since, Health: "healthy", CPUPercent: 1.5, RSSBytes: 1 << 20}
	detail := api.ComponentDetail{Component: comp, Transitions: []api.Transition{{At: since, From: "STARTING", To: "RUNNING", Reason: "started"}}}
	dep := api.Deployment{ID: "d1", Status: "SUCCEEDED", CreatedAt: since, UpdatedAt: since, Steps: []api.Step{{Seq: 1, Name: "plan", Status: "done", At: since}}}
	var gotRequest api.DeploymentRequest

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `keystone_agent_info{version="dev"} 1`)
	})
	mux.HandleFunc("GET /v1/components", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []api.Component{comp})
	})
	mux.HandleFunc("GET /v1/components/{name}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, detail)
	})
	for _, verb := range []string{"restart", "stop", "start"} {
		mux.HandleFunc("POST /v1/components/{name}/"+verb, func(w http.ResponseWriter, r *http.Request) {
			c := comp
			c.Name = r.PathValue("name")
			c.State = verb
			writeJSON(w, 200, c)
		})
	}
	mux.HandleFunc("POST /v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			writeJSON(w, 400, api.Error{Message: "want JSON", Code: api.CodeBadRequest})
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&gotRequest); err != nil {
			writeJSON(w, 400, api.Error{Message: err.Error(), Code: api.CodeBadRequest})
			return
		}
		writeJSON(w, 202, api.DeploymentAccepted{ID: "d1", Plan: []api.PlanItem{{Component: "com.example.a", Action: "add", ToVersion: "1.0.0"}}})
	})
	mux.HandleFunc("GET /v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("limit") == "1" {
			writeJSON(w, 200, []api.Deployment{})
			return
		}
		writeJSON(w, 200, []api.Deployment{dep})
	})
	mux.HandleFunc("GET /v1/deployments/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, dep)
	})
	mux.HandleFunc("POST /v1/deployments/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		d := dep
		d.ID, d.Status = r.PathValue("id"), "IN_PROGRESS"
		writeJSON(w, 202, d)
	})
	mux.HandleFunc("POST /v1/deployments/rollback", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 202, api.DeploymentAccepted{ID: "rollback-1"})
	})
	mux.HandleFunc("POST /v1/plugins/{name}/run", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []api.Metric{{Name: "pos_tx", Type: "counter", Value: 3}})
	})
	c := serveUnix(t, mux)
	ctx := ctx(t)

	if err := c.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	if m, err := c.Metrics(ctx); err != nil || !strings.Contains(string(m), "keystone_agent_info") {
		t.Errorf("Metrics = %q, %v", m, err)
	}
	if list, err := c.Components(ctx); err != nil || !reflect.DeepEqual(list, []api.Component{comp}) {
		t.Errorf("Components = %+v, %v", list, err)
	}
	if got, err := c.Component(ctx, "com.example.a"); err != nil || !reflect.DeepEqual(got, detail) {
		t.Errorf("Component = %+v, %v", got, err)
	}
	for verb, act := range map[string]func(context.Context, string) (api.Component, error){
		"restart": c.RestartComponent, "stop": c.StopComponent, "start": c.StartComponent,
	} {
		got, err := act(ctx, "com.example.b")
		if err != nil || got.Name != "com.example.b" || got.State != verb {
			t.Errorf("%s = %+v, %v", verb, got, err)
		}
	}
	req := api.DeploymentRequest{Manifest: "format = 1\n", Files: map[string][]byte{"a.recipe.toml": []byte("x"), "a.recipe.toml.sig": []byte("sig")}, Preempt: true}
	acc, err := c.Deploy(ctx, req)
	if err != nil || acc.ID != "d1" || len(acc.Plan) != 1 || acc.Plan[0].Action != "add" {
		t.Errorf("Deploy = %+v, %v", acc, err)
	}
	if !reflect.DeepEqual(gotRequest, req) {
		t.Errorf("server got %+v, want %+v", gotRequest, req)
	}
	if list, err := c.Deployments(ctx, 0); err != nil || len(list) != 1 || list[0].ID != "d1" {
		t.Errorf("Deployments = %+v, %v", list, err)
	}
	if list, err := c.Deployments(ctx, 1); err != nil || len(list) != 0 {
		t.Errorf("Deployments(limit 1) = %+v, %v", list, err)
	}
	if got, err := c.Deployment(ctx, "d1"); err != nil || !reflect.DeepEqual(got, dep) {
		t.Errorf("Deployment = %+v, %v", got, err)
	}
	if got, err := c.CancelDeployment(ctx, "d7"); err != nil || got.ID != "d7" {
		t.Errorf("CancelDeployment = %+v, %v", got, err)
	}
	if got, err := c.RollbackDeployment(ctx, false); err != nil || got.ID != "rollback-1" {
		t.Errorf("RollbackDeployment = %+v, %v", got, err)
	}
	if got, err := c.RunPlugin(ctx, "com.example.pos"); err != nil || len(got) != 1 || got[0].Name != "pos_tx" {
		t.Errorf("RunPlugin = %+v, %v", got, err)
	}
}

func TestClientErrorsCarryTheCode(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/components/{name}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, api.Error{Message: fmt.Sprintf("no component %q", r.PathValue("name")), Code: api.CodeNotFound})
	})
	mux.HandleFunc("POST /v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 422, api.Error{Message: "the deployment has 2 problems", Code: api.CodeInvalid,
			Details: []string{"deployment.toml:3:1: deployment.failure_policy: must be one of rollback, keep", "a.recipe.toml: metadata.name: required"}})
	})
	mux.HandleFunc("GET /v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "proxy exploded", http.StatusBadGateway) // not JSON
	})
	mux.HandleFunc("GET /v1/deployments/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge) // no body at all
	})
	c := serveUnix(t, mux)
	ctx := ctx(t)

	_, err := c.Component(ctx, "no.such")
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeNotFound || err.Error() != `no component "no.such"` {
		t.Errorf("unknown component: %#v (%v)", err, err)
	}

	_, err = c.Deploy(ctx, api.DeploymentRequest{Manifest: "x"})
	if api.ErrorCode(err) != api.CodeInvalid {
		t.Errorf("invalid deployment: code %q (%v)", api.ErrorCode(err), err)
	}
	want := "the deployment has 2 problems\n  deployment.toml:3:1: deployment.failure_policy: must be one of rollback, keep\n  a.recipe.toml: metadata.name: required"
	if err.Error() != want {
		t.Errorf("invalid deployment error text:\n%s\nwant:\n%s", err, want)
	}

	_, err = c.Deployments(ctx, 0)
	if api.ErrorCode(err) != api.CodeInternal || !strings.Contains(err.Error(), "HTTP 502: proxy exploded") {
		t.Errorf("non-JSON error: code %q, %v", api.ErrorCode(err), err)
	}
	_, err = c.Deployment(ctx, "x")
	if api.ErrorCode(err) != api.CodeTooLarge || !strings.Contains(err.Error(), "Request Entity Too Large") {
		t.Errorf("empty error body: code %q, %v", api.ErrorCode(err), err)
	}
	if api.ErrorCode(errors.New("plain")) != "" {
		t.Error("ErrorCode of a plain error should be empty")
	}
}

func TestClientUnavailable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	c := api.NewClient(sock)
	defer c.Close()
	_, err := c.Components(ctx(t))
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), sock) {
		t.Errorf("no socket: %v", err)
	}
	if api.ErrorCode(err) != "" {
		t.Errorf("a connection failure has no API code, got %q", api.ErrorCode(err))
	}
}

func TestClientEscapesNames(t *testing.T) {
	var gotPath string
	c := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.EscapedPath()
		writeJSON(w, 404, api.Error{Message: "no", Code: api.CodeNotFound})
	}))
	_, _ = c.Component(ctx(t), "../v1/deployments")
	if gotPath != "/v1/components/..%2Fv1%2Fdeployments" {
		t.Errorf("path = %q", gotPath)
	}
}

func TestClientLogsAndEventsStream(t *testing.T) {
	release := make(chan struct{})
	var gotQuery string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/components/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.RawQuery
		fmt.Fprintln(w, `{"ts":"2026-11-25T10:00:00Z","stream":"stdout","text":"line 1"}`)
		fmt.Fprintln(w, `{"ts":"2026-11-25T10:00:01Z","stream":"stderr","text":"line 2"}`)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("follow") != "1" {
			writeJSON(w, 400, api.Error{Message: "want follow", Code: api.CodeBadRequest})
			return
		}
		fmt.Fprintln(w, `{"ts":"2026-11-25T10:00:00Z","kind":"transition","component":"com.example.a","from":"STARTING","to":"RUNNING"}`)
		fmt.Fprintln(w)
		w.(http.Flusher).Flush()
		<-release // the second event comes only when the test says so
		fmt.Fprintln(w, `{"ts":"2026-11-25T10:00:01Z","kind":"deployment","deployment":"d1","step":"commit","dropped":2}`)
	})
	c := serveUnix(t, mux)
	ctx := ctx(t)

	logs, err := c.Logs(ctx, "com.example.a", api.LogsOptions{Tail: 5, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var lines []api.LogLine
	for {
		l, err := logs.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	logs.Close()
	want := []api.LogLine{
		{At: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Stream: "stdout", Text: "line 1"},
		{At: time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC), Stream: "stderr", Text: "line 2"},
	}
	if !reflect.DeepEqual(lines, want) || gotQuery != "follow=1&tail=5" {
		t.Errorf("logs %+v with query %q", lines, gotQuery)
	}

	s, err := c.Events(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := s.Next()
	if err != nil || e.Kind != api.EventTransition || e.To != "RUNNING" || e.Component != "com.example.a" {
		t.Fatalf("first event %+v, %v", e, err)
	}
	close(release)
	e, err = s.Next()
	if err != nil || e.Kind != api.EventDeployment || e.Deployment != "d1" || e.Dropped != 2 {
		t.Fatalf("second event %+v, %v", e, err)
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last event: %v, want io.EOF", err)
	}
}

// Answers the agent's HTTP server writes itself, before the API reads the
// request, are plain text: the client still gives each its code, says
// what kind of answer it was, and never prints a control character raw.
func TestClientExplainsPlainTextRefusals(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/components/{name}", func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(r.PathValue("name"))
		body := http.StatusText(status)
		if status == http.StatusBadRequest {
			body = "400 Bad Request: malformed \x1b[2J request\r\nline"
		}
		http.Error(w, body, status)
	})
	c := serveUnix(t, mux)
	for status, code := range map[int]string{
		http.StatusRequestHeaderFieldsTooLarge: api.CodeTooLarge,
		http.StatusUnsupportedMediaType:        api.CodeBadRequest,
		http.StatusBadRequest:                  api.CodeBadRequest,
	} {
		_, err := c.Component(ctx(t), strconv.Itoa(status))
		msg := fmt.Sprint(err)
		if api.ErrorCode(err) != code || !strings.Contains(msg, fmt.Sprintf("HTTP %d", status)) || !strings.Contains(msg, "plain text") {
			t.Errorf("HTTP %d: code %q, %q; want code %s and a message saying it was a plain-text refusal", status, api.ErrorCode(err), msg, code)
		}
		if strings.ContainsAny(msg, "\x1b\r\n") {
			t.Errorf("HTTP %d: raw control characters in %q", status, msg)
		}
	}
}
