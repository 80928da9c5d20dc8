package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/supervisor/events"
)

func quantile(xs []time.Duration, q float64) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchSupervisor(b *testing.B, bus *events.Bus) *Supervisor {
	return benchSupervisorWithShim(b, bus, "")
}

// benchSupervisorWithShim is benchSupervisor whose runner starts processes
// through the shim program shimPath ("" = this test binary).
func benchSupervisorWithShim(b *testing.B, bus *events.Bus, shimPath string) *Supervisor {
	lm, err := logs.Open(logs.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lm.Close() })
	r, err := runner.New(runner.Config{ShimPath: shimPath, Logs: lm, Cgroups: cgroup.Config{Root: newCgroupRoot(b)}})
	if err != nil {
		b.Fatal(err)
	}
	sup, err := New(Config{Launcher: &ProcessLauncher{Runner: r, AllowRoot: true}, Events: bus})
	if err != nil {
		b.Fatal(err)
	}
	if err := sup.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sup.Stop(ctx); err != nil {
			b.Error(err)
		}
	})
	return sup
}

// (a) Restart latency: SIGKILL of a child to its replacement RUNNING, with
// restart_backoff.initial = "0s"; 100 kills per iteration, each as soon as
// the replacement runs.
func BenchmarkRestartLatency(b *testing.B) { benchRestartLatencyShims(b, 0) }

// (a) again, each kill after 50 ms of quiet, as a crash usually comes: the
// kernel makes some cgroup operations wait for an RCU grace period once
// the machine has been quiet, which back-to-back kills never show.
func BenchmarkRestartLatencyAfterIdle(b *testing.B) { benchRestartLatencyShims(b, 50*time.Millisecond) }

// benchRestartLatencyShims runs the restart benchmark three ways: the
// program started straight from the runner's spawner thread (what a
// recipe without a seccomp profile file or open_files gets), and through
// each shim, forced by an open_files limit: this test binary re-executed
// (as the agent re-executes itself) and the dedicated keystone-shim
// program, built as it ships.
func benchRestartLatencyShims(b *testing.B, quiet time.Duration) {
	dir := b.TempDir()
	shimPath := filepath.Join(dir, runner.ShimName)
	build := exec.Command("go", "build", "-o", shimPath, "github.com/keystone-edge/keystone/cmd/keystone-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build keystone-shim: %v\n%s", err, out)
	}
	b.Run("start=direct", func(b *testing.B) { benchRestartLatency(b, quiet, shimPath, false) })
	b.Run("start=keystone-shim", func(b *testing.B) { benchRestartLatency(b, quiet, shimPath, true) })
	b.Run("start=self-as-shim", func(b *testing.B) { benchRestartLatency(b, quiet, "", true) })
}

func benchRestartLatency(b *testing.B, quiet time.Duration, shimPath string, viaShim bool) {
	bus := events.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := bus.Subscribe(ctx, 1024)
	sup := benchSupervisorWithShim(b, bus, shimPath)
	c := proc("com.example.victim", "exec sleep 1000", func(r *recipes.Recipe) {
		r.Lifecycle.Run.RestartBackoff = recipes.Backoff{Initial: d("0s"), Max: d("0s")}
		r.Lifecycle.Run.MaxRestarts = recipes.MaxRestarts{Count: 1 << 30, Window: d("1m")}
		if viaShim {
			r.Resources.OpenFiles = 4096 // only the shim sets it
		}
	})
	if err := sup.Apply(ctx, []*Component{c}); err != nil {
		b.Fatal(err)
	}
	// running waits for the next RUNNING and returns the times of the
	// transitions on the way (ERRORED: exit seen; STARTING: restart
	// decided; RUNNING: the runner started the new process).
	running := func() (errored, starting, run time.Time) {
		for e := range ch {
			if e.Kind != events.KindTransition {
				continue
			}
			switch e.To {
			case StateErrored.String():
				errored = e.At
			case StateStarting.String():
				starting = e.At
			case StateRunning.String():
				return errored, starting, e.At
			}
		}
		b.Fatal("bus closed")
		return
	}
	running()
	var total, detect, decide, launch []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := 0; k < 100; k++ {
			st, _ := sup.Component(c.Name())
			if quiet > 0 {
				b.StopTimer()
				t := time.NewTimer(quiet)
				<-t.C
				b.StartTimer()
			}
			t0 := time.Now()
			if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
				b.Fatal(err)
			}
			errored, starting, run := running()
			total = append(total, time.Since(t0))
			detect = append(detect, errored.Sub(t0))
			decide = append(decide, starting.Sub(errored))
			launch = append(launch, run.Sub(starting))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(quantile(total, 0.5)), "ms/p50")
	b.ReportMetric(ms(quantile(total, 0.99)), "ms/p99")
	// Where the time goes (p50 of each leg): the runner reporting the exit,
	// the supervisor deciding to restart, the runner starting the process.
	b.ReportMetric(ms(quantile(detect, 0.5)), "exit-ms/p50")
	b.ReportMetric(ms(quantile(decide, 0.5)), "decide-ms/p50")
	b.ReportMetric(ms(quantile(launch, 0.5)), "launch-ms/p50")
	b.ReportMetric(0, "ns/op")
}

// (b) Time to start 100 trivial components in 10 dependency layers (each
// component hard-depends on every component of the layer below).
func BenchmarkStart100In10Layers(b *testing.B) {
	benchStartAll(b, "ms/start-100", func() []*Component {
		var comps []*Component
		for layer := 0; layer < 10; layer++ {
			for k := 0; k < 10; k++ {
				var mods []func(*recipes.Recipe)
				if layer > 0 {
					for j := 0; j < 10; j++ {
						mods = append(mods, dependsOn(fmt.Sprintf("com.example.l%d-%d", layer-1, j), recipes.DependencyHard))
					}
				}
				comps = append(comps, proc(fmt.Sprintf("com.example.l%d-%d", layer, k), "exec sleep 1000", mods...))
			}
		}
		return comps
	})
}

// BenchmarkStart50 is an agent's cold start in-process: 50 independent
// process components applied at once, until every one is RUNNING.
func BenchmarkStart50(b *testing.B) {
	benchStartAll(b, "ms/start-50", func() []*Component {
		var comps []*Component
		for k := range 50 {
			comps = append(comps, proc(fmt.Sprintf("com.example.c%02d", k), "exec sleep 1000"))
		}
		return comps
	})
}

// benchStartAll times Apply of the components set makes, on a fresh
// supervisor each round, until every one is ready, and reports the median
// as metric.
func benchStartAll(b *testing.B, metric string, set func() []*Component) {
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sup := benchSupervisor(b, events.New(nil))
		comps := set()
		names := make([]string, len(comps))
		for k, c := range comps {
			names[k] = c.Name()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		b.StartTimer()
		t0 := time.Now()
		if err := sup.Apply(ctx, comps); err != nil {
			b.Fatal(err)
		}
		if err := sup.WaitReady(ctx, names); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
		b.StopTimer()
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		if err := sup.Stop(sctx); err != nil {
			b.Fatal(err)
		}
		scancel()
	}
	b.ReportMetric(ms(quantile(took, 0.5)), metric)
	b.ReportMetric(0, "ns/op")
}
