package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/runner/cgroup"
)

// agentConfig writes an agent.toml for a test agent in a fresh folder and
// loads it: its own data folder, socket and a free http_listen port,
// unsigned recipes allowed, plus extra TOML lines appended at the end
// (which may add tables).
func agentConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	dir := shortDir(t)
	text := fmt.Sprintf(`device_id = "test-device"
data_dir = %q
root_dir = %q
log_level = "debug"

[api]
socket      = %q
http_listen = "127.0.0.1:0"

[trust]
allow_unsigned = true
%s
`, filepath.Join(dir, "data"), filepath.Join(dir, "root"), filepath.Join(dir, "agent.sock"), extra)
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("load test agent.toml: %v\n%s", err, text)
	}
	// The tests run as root and their recipes name no run_as. Set here, not
	// in the text, so that extra may bring its own tables; a test of the
	// refusal sets it back to false on the returned configuration.
	cfg.Security.AllowRoot = true
	return cfg
}

// testAgent is an agent running in the test process through Run.
type testAgent struct {
	t      testing.TB
	cfg    *config.Config
	addrs  Addresses
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
	seen   *logWatch    // the records of logs, to wait for
	http   *http.Client // over the Unix socket
	client *api.Client

	stopOnce sync.Once
	stopErr  error
}

// startAgent runs an agent on cfg and waits until its API answers. It is
// stopped (cleanly, checked) when the test ends if the test has not.
func startAgent(t testing.TB, cfg *config.Config, opts Options) *testAgent {
	t.Helper()
	a := &testAgent{t: t, cfg: cfg, done: make(chan error, 1), logs: &syncBuffer{}}
	ready := make(chan Addresses, 1)
	opts.Ready = func(ad Addresses) { ready <- ad }
	a.seen = newLogWatch(a.logs)
	if opts.Logger == nil {
		opts.Logger = slog.New(a.seen)
	}
	if opts.Cgroups == (cgroup.Config{}) {
		opts.Cgroups = newCgroupRoot(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- Run(ctx, cfg, opts) }()
	select {
	case a.addrs = <-ready:
	case err := <-a.done:
		cancel()
		t.Fatalf("agent ended before it was ready: %v\nlogs:\n%s", err, a.logs)
	case <-time.After(waitFor):
		cancel()
		t.Fatalf("agent not ready within %s\nlogs:\n%s", waitFor, a.logs)
	}
	a.http = unixHTTPClient(cfg.API.Socket)
	a.client = api.NewClient(cfg.API.Socket)
	t.Cleanup(func() {
		a.client.Close()
		if err := a.stop(); err != nil {
			t.Errorf("agent shutdown: %v\nlogs:\n%s", err, a.logs)
		}
	})
	return a
}

// stop shuts the agent down as SIGTERM would and returns Run's result.
func (a *testAgent) stop() error {
	a.stopOnce.Do(func() {
		a.cancel()
		select {
		case a.stopErr = <-a.done:
		case <-time.After(waitFor):
			a.stopErr = fmt.Errorf("agent did not stop within %s", waitFor)
		}
	})
	return a.stopErr
}

// unixHTTPClient talks HTTP over the socket at path.
func unixHTTPClient(path string) *http.Client {
	return &http.Client{
		Timeout: waitFor,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		},
	}
}

// do sends a request over the socket, its body (if any) declared JSON as
// every API client must, and returns the status and body.
func (a *testAgent) do(method, path string, body io.Reader) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, "http://agent"+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", api.ContentJSON)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// apiError decodes an error answer, failing the test when it is not one.
func apiError(t testing.TB, body []byte) api.Error {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("not an API error {error, code}: %q (%v)", body, err)
	}
	return e
}
