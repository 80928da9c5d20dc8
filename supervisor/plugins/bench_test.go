package plugins

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/supervisor"
)

// benchWindow is how long the sustained-rate benchmark runs its plugins.
const benchWindow = 20 * time.Second

func cpuSeconds(who int) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkExecPluginsSustained schedules 100 exec plugins at a 1s interval
// (1s jitter) for benchWindow, as the agent does: the example sysload
// plugin (POSIX sh reading /proc, state kept in a real store file), each run
// a confined process through the runner's shim and cgroups. It reports the
// rate achieved against the 100 runs/s asked for, the skips and errors,
// and the CPU used by the scheduling side (this process: scheduling,
// spawning, validation, mapping, export, state writes) and by the runs
// themselves (shim and plugin processes), in percent of one core.
func BenchmarkExecPluginsSustained(b *testing.B) {
	b.Run("textfile=off", func(b *testing.B) { benchSustained(b, false) })
	b.Run("textfile=on", func(b *testing.B) { benchSustained(b, true) })
}

func benchSustained(b *testing.B, textfile bool) {
	script, err := os.ReadFile("../../recipes/examples/sysload/collect.sh")
	if err != nil {
		b.Fatal(err)
	}
	const plugins = 100
	for b.Loop() {
		e := newEnv(b, "")
		ec := plugin.ExporterConfig{}
		if textfile {
			ec.TextfileDir = b.TempDir()
		}
		ex, err := plugin.NewExporter(ec)
		if err != nil {
			b.Fatal(err)
		}
		l, err := New(Config{Runner: e.runner, Exporter: ex, State: e.store, Logs: e.logs,
			Clock: supervisor.SystemClock{}, DeviceID: "bench", AllowRoot: true})
		if err != nil {
			b.Fatal(err)
		}
		var handles []supervisor.Handle
		for i := range plugins {
			c := component(b, fmt.Sprintf("com.example.bench-%03d", i), "", recipes.Plugin{
				Interval: recipes.Duration{Duration: time.Second}, Jitter: recipes.Duration{Duration: time.Second},
				Timeout: recipes.Duration{Duration: time.Second}, State: true,
				Mapping: recipes.Mapping{Prefix: "sysload_", Labels: map[string]string{"site": "bench"}},
			})
			if err := os.WriteFile(filepath.Join(c.VersionDir, "collect.sh"), script, 0o755); err != nil {
				b.Fatal(err)
			}
			h, err := l.Launch(context.Background(), c)
			if err != nil {
				b.Fatal(err)
			}
			handles = append(handles, h)
		}
		// Let the first second (everyone's first run) settle, then measure.
		<-time.After(time.Second)
		var runs0, fails0, skips0 uint64
		for i := range plugins {
			st, _ := l.Status(fmt.Sprintf("com.example.bench-%03d", i))
			runs0, fails0, skips0 = runs0+st.Runs, fails0+st.Failures, skips0+st.Skipped
		}
		t0 := time.Now()
		self0, kids0 := cpuSeconds(syscall.RUSAGE_SELF), cpuSeconds(syscall.RUSAGE_CHILDREN)
		<-time.After(benchWindow)
		elapsed := time.Since(t0).Seconds()
		self1, kids1 := cpuSeconds(syscall.RUSAGE_SELF), cpuSeconds(syscall.RUSAGE_CHILDREN)
		var runs, fails, skips uint64
		for i := range plugins {
			st, _ := l.Status(fmt.Sprintf("com.example.bench-%03d", i))
			runs, fails, skips = runs+st.Runs, fails+st.Failures, skips+st.Skipped
			if st.LastError != "" {
				b.Logf("%s: %d failures, last: %s", fmt.Sprintf("com.example.bench-%03d", i), st.Failures, st.LastError)
			}
		}
		for _, h := range handles {
			_ = h.Stop(context.Background())
		}
		b.ReportMetric(float64(runs-runs0)/elapsed, "runs/s")
		b.ReportMetric(float64(fails-fails0), "failed")
		b.ReportMetric(float64(skips-skips0), "skipped")
		b.ReportMetric(100*(self1-self0)/elapsed, "agent_cpu_%")
		b.ReportMetric(100*(kids1-kids0)/elapsed, "runs_cpu_%")
	}
}
