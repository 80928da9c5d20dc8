package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

// fakeAgent answers the agent's local API with canned values of the wire
// types, on a real Unix socket, for the CLI's own tests. It records what it
// was sent. (The end-to-end tests in internal/e2e use the real agent.)
type fakeAgent struct {
	sock string
	mux  *http.ServeMux

	mu       sync.Mutex
	requests []recorded
}

// recorded is one request the fake agent received.
type recorded struct {
	method, path, query string
	body                []byte
}

// newFakeAgent starts an empty fake agent; tests add handlers to mux.
// Paths nobody handles answer 404 with a JSON error, as the agent does.
func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "kctl") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeAgent{sock: filepath.Join(dir, "agent.sock"), mux: http.NewServeMux()}
	f.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		replyJSON(w, http.StatusNotFound, api.Error{Message: "no endpoint " + r.Method + " " + r.URL.Path, Code: api.CodeNotFound})
	})
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		r.Body.Close()
		f.mu.Lock()
		f.requests = append(f.requests, recorded{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, body: body.Bytes()})
		f.mu.Unlock()
		r.Body = readCloser{bytes.NewReader(body.Bytes())}
		f.mux.ServeHTTP(w, r)
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// handle answers pattern with v as JSON and the given status.
func (f *fakeAgent) handle(pattern string, status int, v any) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { replyJSON(w, status, v) })
}

// sent returns the requests received for method and path, in order.
func (f *fakeAgent) sent(method, path string) []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []recorded
	for _, r := range f.requests {
		if r.method == method && r.path == path {
			out = append(out, r)
		}
	}
	return out
}

func replyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", api.ContentJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fixedNow is the clock of the CLI tests.
func fixedNow() time.Time { return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) }

// cliRun is how one CLI test invocation is set up.
type cliRun struct {
	sock     string
	terminal bool // pretend stdout is a terminal
}

// run runs keystonectl in-process against the fake agent's socket, with
// the clock fixed at fixedNow.
func (c cliRun) run(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	opts := &options{
		In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr,
		Getenv:   func(k string) string { return map[string]string{"KEYSTONE_SOCKET": c.sock}[k] },
		Now:      fixedNow,
		Terminal: func() bool { return c.terminal },
	}
	code := execute(t.Context(), opts, args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}
