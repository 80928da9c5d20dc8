package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/proctest"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor/events"
	"golang.org/x/sys/unix"
)

// watcher follows the event bus and waits for transitions.
type watcher struct {
	t    *testing.T
	ch   <-chan events.Event
	log  []events.Event
	used map[int]bool // log entries a waitFor already returned
}

func watch(t *testing.T, bus *events.Bus) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &watcher{t: t, ch: bus.Subscribe(ctx, 4096), used: map[int]bool{}}
}

// waitFor returns the first transition of component to state (with a
// reason containing reason) that no earlier waitFor returned, waiting for
// it if it has not happened yet.
func (w *watcher) waitFor(component string, to State, reason string) events.Event {
	w.t.Helper()
	match := func(e events.Event) bool {
		return e.Kind == events.KindTransition && e.Component == component && e.To == to.String() && strings.Contains(e.Reason, reason)
	}
	for i, e := range w.log {
		if !w.used[i] && match(e) {
			w.used[i] = true
			return e
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-w.ch:
			if e.Dropped > 0 {
				w.t.Fatalf("watcher lost %d events", e.Dropped)
			}
			w.log = append(w.log, e)
			if match(e) {
				w.used[len(w.log)-1] = true
				return e
			}
		case <-deadline:
			w.t.Fatalf("timed out waiting for %s -> %s (%q); saw:\n%s", component, to, reason, w.transcript())
		}
	}
}

func (w *watcher) transcript() string {
	var b strings.Builder
	for _, e := range w.log {
		if e.Kind == events.KindTransition {
			fmt.Fprintf(&b, "%s %s -> %s: %s\n", e.Component, e.From, e.To, e.Reason)
		} else {
			fmt.Fprintf(&b, "%s %s: %s\n", e.Kind, e.Component, e.Reason)
		}
	}
	return b.String()
}

// index returns the position in the log of the first transition of
// component to state, or -1.
func (w *watcher) index(component string, to State) int {
	for i, e := range w.log {
		if e.Kind == events.KindTransition && e.Component == component && e.To == to.String() {
			return i
		}
	}
	return -1
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// proc builds a process component running script with /bin/sh.
func proc(name, script string, mods ...func(*recipes.Recipe)) *Component {
	r := &recipes.Recipe{
		Format:   1,
		Metadata: recipes.Metadata{Name: name, Version: "1.0.0", Kind: recipes.KindProcess},
		Lifecycle: recipes.Lifecycle{Run: &recipes.Run{
			Script:         script,
			RestartPolicy:  recipes.RestartAlways,
			RestartBackoff: recipes.Backoff{Initial: d("1s"), Max: d("1m")},
			MaxRestarts:    recipes.MaxRestarts{Count: 5, Window: d("10m")},
			StopSignal:     "SIGTERM",
			StopTimeout:    d("5s"),
		}},
	}
	for _, m := range mods {
		m(r)
	}
	return &Component{Recipe: r, VersionDir: os.TempDir(), WorkDir: os.TempDir()}
}

func d(s string) recipes.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err) // test constants only
	}
	return recipes.Duration{Duration: v}
}

func dependsOn(name string, typ recipes.DependencyType) func(*recipes.Recipe) {
	return func(r *recipes.Recipe) {
		r.Dependencies = append(r.Dependencies, recipes.Dependency{Name: name, Type: typ})
	}
}

// waitGone waits until pid no longer runs, through a pidfd (which works
// for processes that are not our children).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone
	}
	defer unix.Close(fd)
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 30_000)
	if err != nil || n == 0 {
		if proctest.Alive(pid) {
			t.Fatalf("pid %d still alive after 30s (%v)", pid, err)
		}
	}
}
