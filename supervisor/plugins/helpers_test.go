package plugins

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

func TestMain(m *testing.M) {
	if runner.IsShim(os.Args) {
		runner.ShimMain()
	}
	os.Exit(m.Run())
}

// env is a Launcher with its real parts: a process runner, a store file,
// an exporter (with a textfile folder) and an event bus.
type env struct {
	l        *Launcher
	clock    *fakeclock.Clock
	store    *store.Store
	exporter *plugin.Exporter
	bus      *events.Bus
	reports  chan Report
	dbPath   string
	textDir  string
	runner   *runner.Runner
	logs     *logs.Manager
}

func newEnv(t testing.TB, dbPath string) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: plugins run as confined processes (cgroups) and these tests need root")
	}
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "keystone.db")
	}
	st, err := store.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	lm, err := logs.Open(logs.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	root := "/keystone-plugins-test-" + hex.EncodeToString(b)
	r, err := runner.New(runner.Config{Logs: lm, Cgroups: cgroup.Config{Root: root}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m, err := cgroup.NewManager(cgroup.Config{Root: root}); err == nil {
			_ = m.Prune()
		}
	})
	clock := fakeclock.New(time.Time{})
	textDir := t.TempDir()
	ex, err := plugin.NewExporter(plugin.ExporterConfig{TextfileDir: textDir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{clock: clock, store: st, exporter: ex, bus: events.New(clock.Now), reports: make(chan Report, 100),
		dbPath: dbPath, textDir: textDir, runner: r, logs: lm}
	e.l, err = New(Config{
		Runner: r, Exporter: ex, State: st, Logs: lm, DeviceID: "pos-12",
		Events: e.bus, OnRun: func(rep Report) { e.reports <- rep },
		Clock: clock, Rand: func() float64 { return 0 },
		// The tests run as root and their plugins name no run_as.
		AllowRoot: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// report waits for the next run's report.
func (e *env) report(t testing.TB) Report {
	t.Helper()
	select {
	case r := <-e.reports:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no run finished within 30s")
	}
	return Report{}
}

// tick fires the next slot and waits for its run.
func (e *env) tick(t testing.TB) Report {
	t.Helper()
	e.clock.Advance(e.clock.WaitNext(t))
	return e.report(t)
}

// launch launches a plugin component and stops it after the test.
func (e *env) launch(t testing.TB, c *supervisor.Component) supervisor.Handle {
	t.Helper()
	h, err := e.l.Launch(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	return h
}

// value gathers the exporter and returns the value of the series name with
// the given label pairs (a histogram's count); -1 when there is none.
func (e *env) value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.exporter)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// component is a rendered plugin component whose command is a /bin/sh
// script in its own version folder.
func component(t testing.TB, name, script string, pl recipes.Plugin) *supervisor.Component {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "collect.sh"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	pl.Command = "collect.sh"
	if pl.Interval.Duration == 0 {
		pl.Interval = recipes.Duration{Duration: 10 * time.Second}
	}
	if pl.Timeout.Duration == 0 {
		pl.Timeout = recipes.Duration{Duration: 20 * time.Second}
	}
	return &supervisor.Component{
		Recipe: &recipes.Recipe{
			Format:   1,
			Metadata: recipes.Metadata{Name: name, Version: "1.0.0", Kind: recipes.KindPlugin},
			Plugin:   &pl,
		},
		VersionDir: dir, WorkDir: dir,
	}
}

// counterScript counts its runs in its state and reports the count.
const counterScript = `input=$(cat)
runs=0
case $input in
*'"runs":'*) rest=${input#*\"runs\":}; runs=${rest%%[!0-9]*} ;;
esac
runs=$((runs + 1))
printf '{"metrics":[{"name":"runs_total","type":"counter","value":%s,"help":"Runs"},' "$runs"
printf '{"name":"latency_seconds","type":"histogram","buckets":{"0.1":1,"+Inf":2},"sum":0.3}],"state":{"runs":%s}}\n' "$runs"
`

func has(s, sub string) bool { return strings.Contains(s, sub) }
