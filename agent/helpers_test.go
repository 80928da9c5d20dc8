package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/supervisor"
)

// The test binary doubles as the runner's shim (components started by an
// in-process agent re-execute it), as a client run as another user (see
// dialHelper), and as an agent in a process of its own, maybe under a
// reaper host (see procAgent).
func TestMain(m *testing.M) {
	if runner.IsShim(os.Args) {
		runner.ShimMain()
	}
	if os.Getenv(dialHelperEnv) != "" {
		os.Exit(dialHelper())
	}
	if os.Getenv(reaperHostEnv) != "" {
		os.Exit(reaperHost())
	}
	if os.Getenv(procAgentEnv) != "" {
		os.Exit(procAgent())
	}
	os.Exit(m.Run())
}

// waitFor bounds every wait of the tests; nothing here should take long.
const waitFor = 60 * time.Second

// newCgroupRoot returns a cgroup root unique to the test, pruned when it
// ends, so that agents of different tests never share component groups.
func newCgroupRoot(t testing.TB) cgroup.Config {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	root := "/keystone-agent-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		m, err := cgroup.NewManager(cgroup.Config{Root: root})
		if err != nil {
			t.Errorf("cgroup manager for cleanup: %v", err)
			return
		}
		if err := m.Prune(); err != nil {
			t.Errorf("prune cgroups under %s: %v", root, err)
		}
	})
	return cgroup.Config{Root: root}
}

// shortDir is a fresh folder with a short path: a Unix socket path must fit
// in 108 bytes, and t.TempDir() paths carry the test's name.
func shortDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "ks")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// syncBuffer is a bytes.Buffer safe for the agent's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// contains reports whether the logs have a line containing every part.
func (s *syncBuffer) contains(parts ...string) bool {
	for _, line := range strings.Split(s.String(), "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all && line != "" {
			return true
		}
	}
	return false
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newSupervisor is a running supervisor over the real process runner, its
// logs in a fresh folder and its cgroups under a test root; it is stopped
// when the test ends.
func newSupervisor(t testing.TB) *supervisor.Supervisor {
	t.Helper()
	lm, err := logs.Open(logs.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	run, err := runner.New(runner.Config{Logs: lm, Cgroups: newCgroupRoot(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Root allowed: the tests run as root and their components name no run_as.
	sup, err := supervisor.New(supervisor.Config{
		Launcher: &supervisor.ProcessLauncher{Runner: run, AllowRoot: true},
		Sampler:  supervisor.NewProcSampler(sampleInterval),
		Shell:    supervisor.ShellUser{AllowRoot: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := sup.Stop(ctx); err != nil {
			t.Errorf("stop supervisor: %v", err)
		}
		lm.Close()
	})
	return sup
}

// scriptComponent is a process component running script with /bin/sh.
func scriptComponent(t testing.TB, name, script string) *supervisor.Component {
	dir := t.TempDir()
	return &supervisor.Component{
		Recipe: &recipes.Recipe{
			Format:   1,
			Metadata: recipes.Metadata{Name: name, Version: "1.0.0", Kind: recipes.KindProcess},
			Lifecycle: recipes.Lifecycle{Run: &recipes.Run{
				Script:        script,
				RestartPolicy: recipes.RestartNever,
				StopSignal:    "SIGTERM",
				StopTimeout:   recipes.Duration{Duration: 5 * time.Second},
			}},
		},
		VersionDir: dir,
		WorkDir:    dir,
	}
}

// percentiles returns the 50th and 99th percentile of ds (which it sorts).
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return at(0.50), at(0.99)
}

// logWatch is a slog handler that keeps every record's message so tests
// can wait for one, and writes the records as JSON to out.
type logWatch struct {
	slog.Handler
	st *logState
}

type logState struct {
	mu      sync.Mutex
	msgs    []string
	changed chan struct{}
}

func newLogWatch(out io.Writer) *logWatch {
	return &logWatch{
		Handler: slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}),
		st:      &logState{changed: make(chan struct{})},
	}
}

func (h *logWatch) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r) // written before anyone waiting hears of it
	h.st.mu.Lock()
	h.st.msgs = append(h.st.msgs, r.Message)
	close(h.st.changed)
	h.st.changed = make(chan struct{})
	h.st.mu.Unlock()
	return err
}

func (h *logWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &logWatch{Handler: h.Handler.WithAttrs(as), st: h.st}
}

func (h *logWatch) WithGroup(name string) slog.Handler {
	return &logWatch{Handler: h.Handler.WithGroup(name), st: h.st}
}

// count says how many records had message msg.
func (h *logWatch) count(msg string) (int, <-chan struct{}) {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	n := 0
	for _, m := range h.st.msgs {
		if m == msg {
			n++
		}
	}
	return n, h.st.changed
}

// wait blocks until n records with message msg were logged.
func (h *logWatch) wait(t testing.TB, msg string, n int) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		got, changed := h.count(msg)
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("log %q seen %d times within %s, want %d", msg, got, waitFor, n)
		}
	}
}

// dialHelperEnv makes the test binary a client that connects to the socket
// named by its value and exits 0 when it could, 3 when permission was
// denied, 1 otherwise. Tests run it as another user.
const dialHelperEnv = "KEYSTONE_AGENT_TEST_DIAL"

const (
	nobodyID        = 65534
	exitDialDenied  = 3
	exitDialOtherly = 1
)

func dialHelper() int {
	c, err := net.Dial("unix", os.Getenv(dialHelperEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, syscall.EACCES) {
			return exitDialDenied
		}
		return exitDialOtherly
	}
	c.Close()
	return 0
}
