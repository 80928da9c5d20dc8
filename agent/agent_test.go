package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/store"
)

// A second agent on the same data folder fails at once, naming the pid of
// the one that holds it, and touches nothing of the first.
func TestSecondAgentRefused(t *testing.T) {
	cfg := agentConfig(t, "")
	first := startAgent(t, cfg, Options{})

	second := *cfg
	second.API.Socket = filepath.Join(shortDir(t), "second.sock")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := Run(ctx, &second, Options{Logger: discardLogger(), Ready: func(Addresses) { t.Error("second agent became ready") }})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second agent: %v, want a *LockedError", err)
	}
	if le.PID != os.Getpid() {
		t.Errorf("holder pid = %d, want %d", le.PID, os.Getpid())
	}
	if !strings.Contains(err.Error(), "in use by another agent") || !strings.Contains(err.Error(), cfg.DataDir) {
		t.Errorf("message %q does not say which folder is held", err)
	}
	if _, err := os.Stat(second.API.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused agent created its socket: %v", err)
	}
	if err := first.client.Health(context.Background()); err != nil {
		t.Fatalf("first agent hurt by the second: %v", err)
	}

	// Once the first is gone, the folder is free again.
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	third := startAgent(t, cfg, Options{})
	if err := third.client.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Bodies beyond the limit are refused with 413 and a JSON error, before the
// engine sees them.
func TestOversizeBodyRefused(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	big := bytes.Repeat([]byte("x"), api.MaxBodyBytes+1)
	body := append(append([]byte(`{"manifest":"`), big...), `"}`...)
	status, resp := a.do(http.MethodPost, api.PathDeployments, bytes.NewReader(body))
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", status, resp)
	}
	if e := apiError(t, resp); e.Code != api.CodeTooLarge {
		t.Fatalf("code %q, want %q", e.Code, api.CodeTooLarge)
	}
	// Nothing was recorded.
	status, resp = a.do(http.MethodGet, api.PathDeployments, nil)
	if status != http.StatusOK || strings.TrimSpace(string(resp)) != "[]" {
		t.Fatalf("deployments after a refused body: %d %s", status, resp)
	}
}

// Malformed requests are 400 with a code; unknown paths are 404 JSON.
func TestBadRequests(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", api.PathDeployments, `{"manifest": 3}`, 400, api.CodeBadRequest},
		{"POST", api.PathDeployments, `{"manifest": "x", "surprise": true}`, 400, api.CodeBadRequest},
		{"POST", api.PathDeployments, ``, 400, api.CodeBadRequest},
		{"POST", api.PathDeployments, `{}`, 400, api.CodeBadRequest},
		{"POST", api.PathDeployments, `{"manifest":"x"} {}`, 400, api.CodeBadRequest},
		{"GET", "/v1/events?limit=-1", ``, 400, api.CodeBadRequest},
		{"GET", "/v1/nothing-here", ``, 404, api.CodeNotFound},
		{"DELETE", api.PathComponents, ``, 404, api.CodeNotFound},
		{"GET", "/v1/deployments/no-such-id", ``, 404, api.CodeNotFound},
		{"POST", "/v1/plugins/com.example.p/run", ``, 404, api.CodeNotFound},
	} {
		status, body := a.do(tc.method, tc.path, strings.NewReader(tc.body))
		if status != tc.status {
			t.Errorf("%s %s %q: status %d, want %d: %s", tc.method, tc.path, tc.body, status, tc.status, body)
			continue
		}
		if tc.code != "" {
			if e := apiError(t, body); e.Code != tc.code {
				t.Errorf("%s %s: code %q, want %q", tc.method, tc.path, e.Code, tc.code)
			}
		}
	}
}

// An unknown component is a 404 with code NOT_FOUND naming it, for every
// endpoint about one component; no log file is created for it.
func TestUnknownComponent(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	const name = "com.example.nope"
	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/components/" + name},
		{"POST", "/v1/components/" + name + "/restart"},
		{"POST", "/v1/components/" + name + "/stop"},
		{"POST", "/v1/components/" + name + "/start"},
		{"GET", "/v1/components/" + name + "/logs?tail=5"},
		{"POST", "/v1/components/" + name + "/explode"},
	} {
		status, body := a.do(req.method, req.path, nil)
		if status != http.StatusNotFound {
			t.Errorf("%s %s: status %d, want 404: %s", req.method, req.path, status, body)
			continue
		}
		e := apiError(t, body)
		if e.Code != api.CodeNotFound {
			t.Errorf("%s %s: code %q", req.method, req.path, e.Code)
		}
		if !strings.Contains(e.Message, name) && !strings.HasSuffix(req.path, "explode") {
			t.Errorf("%s %s: message %q does not name the component", req.method, req.path, e.Message)
		}
	}
	if _, err := os.Stat(a.cfg.DataPaths().LogFile(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a log file was created for an unknown component: %v", err)
	}
	// The client sees the same: an *api.Error with the code.
	_, err := a.client.RestartComponent(context.Background(), name)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Fatalf("client restart of an unknown component: %v", err)
	}
}

// /healthz answers ok on both listeners; http_listen serves nothing but
// /healthz and /metrics.
func TestHealthzAndTCPListener(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	status, body := a.do("GET", api.PathHealthz, nil)
	if status != 200 || !strings.Contains(string(body), `"status": "ok"`) {
		t.Fatalf("healthz on the socket: %d %s", status, body)
	}
	if a.addrs.HTTP == "" {
		t.Fatal("http_listen not reported")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + a.addrs.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("/healthz"); status != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("healthz over TCP: %d %s", status, body)
	}
	if status, body := get("/metrics"); status != 200 || !strings.Contains(body, "keystone_agent_info") {
		t.Fatalf("metrics over TCP: %d %.200s", status, body)
	}
	for _, p := range []string{"/v1/components", "/v1/deployments", "/v1/events"} {
		if status, body := get(p); status != http.StatusNotFound || !strings.Contains(body, api.CodeNotFound) {
			t.Errorf("%s over TCP: %d %s, want 404: only /metrics and /healthz are served there", p, status, body)
		}
	}
}

// GET /v1/events without follow answers the recorded events, as JSON lines
// of the api.Event shape.
func TestEventsHistory(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{})
	status, body := a.do("GET", "/v1/events?limit=10", nil)
	if status != 200 {
		t.Fatalf("events: %d %s", status, body)
	}
	var found bool
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event line %q: %v", sc.Bytes(), err)
		}
		if e.Kind == api.EventWarning && strings.Contains(e.Reason, "allow_unsigned") {
			found = true
		}
	}
	if !found {
		t.Fatalf("recorded events lack the allow_unsigned warning given at start:\n%s", body)
	}
}

// Under systemd (NOTIFY_SOCKET set) the agent says READY=1 once the API
// answers, pings WATCHDOG=1 at half of WATCHDOG_USEC and says STOPPING=1
// when it shuts down.
func TestSystemdNotify(t *testing.T) {
	dir := shortDir(t)
	notify := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", notify)
	t.Setenv("WATCHDOG_USEC", "200000") // 200ms: pings every 100ms
	t.Setenv("WATCHDOG_PID", "")

	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 256)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	expect := func(want string) {
		t.Helper()
		deadline := time.After(waitFor)
		for {
			select {
			case msg, ok := <-got:
				if !ok {
					t.Fatalf("notify socket closed before %q", want)
				}
				if msg == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %q within %s", want, waitFor)
			}
		}
	}
	a := startAgent(t, agentConfig(t, ""), Options{})
	expect("READY=1")
	expect("WATCHDOG=1")
	expect("WATCHDOG=1")
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1")
}

// A clean shutdown removes the socket and releases the data folder.
func TestShutdownCleansUp(t *testing.T) {
	cfg := agentConfig(t, "")
	a := startAgent(t, cfg, Options{})
	if err := a.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := os.Stat(cfg.API.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	l, err := lockDataDir(cfg.DataDir)
	if err != nil {
		t.Fatalf("data folder still locked after shutdown: %v", err)
	}
	l.release()
	st, err := store.Open(context.Background(), cfg.DataPaths().DB)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("store after shutdown: %v", err)
	}
}

// The agent serves /metrics on the socket and on http_listen with the same
// content.
func TestAgentMetricsEndpoint(t *testing.T) {
	a := startAgent(t, agentConfig(t, ""), Options{Version: "9.9.9"})
	fams := scrape(t, "http://"+a.addrs.HTTP+"/metrics")
	if v, ok := sample(t, fams, "keystone_agent_info", map[string]string{"version": "9.9.9"}); !ok || v != 1 {
		t.Fatalf("keystone_agent_info{version=9.9.9} = %v %v", v, ok)
	}
	status, body := a.do("GET", "/metrics", nil)
	if status != 200 || !strings.Contains(string(body), `keystone_outbox_pending 0`) {
		t.Fatalf("metrics on the socket: %d %.300s", status, body)
	}
}

// A process an earlier agent started but never recorded (it died between
// fork and the store write) is found in its component's cgroup at start,
// stopped before anything starts, and reported as a warning event.
func TestUnrecordedLeftoverSweptAtStart(t *testing.T) {
	cg := newCgroupRoot(t)
	lm, err := logs.Open(logs.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	earlier, err := runner.New(runner.Config{Logs: lm, Cgroups: cg})
	if err != nil {
		t.Fatal(err)
	}
	if earlier.CgroupMode() == cgroup.ModeUnavailable {
		t.Skip("SKIPPED LOUDLY: this host has no cgroups; an unrecorded process cannot be found without them")
	}
	p, _, err := earlier.Start(context.Background(), runner.ProcessSpec{
		Component: "com.example.leftover", Script: "exec sleep 1000", AllowRoot: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentConfig(t, ""), Options{Cgroups: cg})
	select {
	case <-p.Done():
	case <-time.After(waitFor):
		t.Fatalf("the unrecorded process %d still runs after the agent started", p.Pid())
	}
	want := fmt.Sprintf("%d (sleep)", p.Pid())
	if !a.logs.contains("unrecorded", "com.example.leftover", fmt.Sprint(p.Pid())) {
		t.Fatalf("no log line naming the leftover %s:\n%s", want, a.logs)
	}
	// The warning event was recorded: read the store once the agent is gone.
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), a.cfg.DataPaths().DB)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.Events(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Kind == "warning" && e.Component == "com.example.leftover" && strings.Contains(e.Reason, want) {
			return
		}
	}
	t.Fatalf("no warning event naming the leftover %s among %d events", want, len(evs))
}
