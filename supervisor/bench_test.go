package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// benchRestartLatencyShims runs the restart benchmark with each shim: this
// test binary re-executed (as the agent re-executes itself) and the
// dedicated keystone-shim program, built as it ships.
func benchRestartLatencyShims(b *testing.B, quiet time.Duration) {
	dir := b.TempDir()
	shimPath := filepath.Join(dir, runner.ShimName)
	build := exec.Command("go", "build", "-o", shimPath, "github.com/keystone-edge/keystone/cmd/keystone-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build keystone-shim: %v\n%s", err, out)
	}
	b.Run("shim=self", func(b *testing.B) { benchRestartLatency(b, quiet, "") })
	b.Run("shim=keystone-shim", func(b *testing.B) { benchRestartLatency(b, quiet, shimPath) })
}

func benchRestartLatency(b *testing.B, quiet time.Duration, shimPath string) {
	bus := events.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := bus.Subscribe(ctx, 1024)
	sup := benchSupervisorWithShim(b, bus, shimPath)
	c := proc("com.example.victim", "exec sleep 1000", func(r *recipes.Recipe) {
		r.Lifecycle.Run.RestartBackoff = recipes.Backoff{Initial: d("0s"), Max: d("0s")}
		r.Lifecycle.Run.MaxRestarts = recipes.MaxRestarts{Count: 1 << 30, Window: d("1m")}
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
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sup := benchSupervisor(b, events.New(nil))
		var comps []*Component
		var names []string
		for layer := 0; layer < 10; layer++ {
			for k := 0; k < 10; k++ {
				var mods []func(*recipes.Recipe)
				if layer > 0 {
					for j := 0; j < 10; j++ {
						mods = append(mods, dependsOn(fmt.Sprintf("com.example.l%d-%d", layer-1, j), recipes.DependencyHard))
					}
				}
				c := proc(fmt.Sprintf("com.example.l%d-%d", layer, k), "exec sleep 1000", mods...)
				comps = append(comps, c)
				names = append(names, c.Name())
			}
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
	b.ReportMetric(ms(quantile(took, 0.5)), "ms/start-100")
	b.ReportMetric(0, "ns/op")
}

// (c) and (d): RSS and CPU seconds of the supervising process(es) over an
// idle window (KEYSTONE_BENCH_IDLE, default 60s) while 50 `sleep`
// processes with restart-on-exit are supervised: KeyStone (the mini agent,
// a real Supervisor over a real store), supervisord and s6, side by side
// in the same window. Debian's supervisor and s6 packages are installed
// when missing.
func BenchmarkIdle50(b *testing.B) {
	idle := 60 * time.Second
	if v := os.Getenv("KEYSTONE_BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("KEYSTONE_BENCH_IDLE: %v", err)
		}
		idle = d
	}
	ensureTool(b, "supervisord", "supervisor")
	ensureTool(b, "s6-svscan", "s6")
	const n = 50
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		ks := startMiniAgent(b, filepath.Join(dir, "keystone.db"), b.TempDir(), newCgroupRoot(b), n, false)
		sd := startSupervisord(b, filepath.Join(dir, "supervisord"), n)
		s6 := startS6(b, filepath.Join(dir, "s6"), n)

		tree := func(root int) []int { return append([]int{root}, children(root, "s6-supervise")...) }
		b.ResetTimer()
		cpu0 := [3]float64{cpuSeconds(ks.cmd.Process.Pid), cpuSeconds(sd.Process.Pid), cpuSeconds(tree(s6.Process.Pid)...)}
		timer := time.NewTimer(idle)
		<-timer.C
		cpu1 := [3]float64{cpuSeconds(ks.cmd.Process.Pid), cpuSeconds(sd.Process.Pid), cpuSeconds(tree(s6.Process.Pid)...)}
		b.StopTimer()
		rss := [3]float64{rssMiB(ks.cmd.Process.Pid), rssMiB(sd.Process.Pid), rssMiB(tree(s6.Process.Pid)...)}
		cpu := [3]float64{cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], cpu1[2] - cpu0[2]}

		b.ReportMetric(rss[0], "keystone-rss-MiB")
		b.ReportMetric(rss[1], "supervisord-rss-MiB")
		b.ReportMetric(rss[2], "s6-rss-MiB")
		b.ReportMetric(cpu[0], "keystone-cpu-s")
		b.ReportMetric(cpu[1], "supervisord-cpu-s")
		b.ReportMetric(cpu[2], "s6-cpu-s")
		b.ReportMetric(rss[0]/rss[1], "rss-ratio-vs-supervisord")
		b.ReportMetric(rss[0]/rss[2], "rss-ratio-vs-s6")
		// CPU time is counted in clock ticks (10 ms): a ratio over an idle
		// window adds one tick to both sides so 0/0 reads as 1.
		b.ReportMetric((cpu[0]+0.01)/(cpu[2]+0.01), "cpu-ratio-vs-s6")
		b.ReportMetric((cpu[0]+0.01)/(cpu[1]+0.01), "cpu-ratio-vs-supervisord")
		b.ReportMetric(idle.Seconds(), "idle-s")
		b.ReportMetric(0, "ns/op")

		_ = ks.cmd.Process.Signal(syscall.SIGTERM)
		<-ks.exited
	}
}

func ensureTool(b *testing.B, tool, pkg string) {
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if os.Geteuid() != 0 {
		b.Fatalf("%s is missing and installing Debian package %s needs root", tool, pkg)
	}
	b.Logf("installing Debian package %s for %s", pkg, tool)
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("apt-get %v: %v\n%s", args, err, out)
		}
	}
	if _, err := exec.LookPath(tool); err != nil {
		b.Fatalf("%s still missing after installing %s", tool, pkg)
	}
}

// waitChildren waits until root has n live children running cmd.
func waitChildren(b *testing.B, root int, cmd string, n int, under func(int) []int) {
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		got := 0
		for _, p := range under(root) {
			got += len(children(p, cmd))
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d %s processes under %d after a minute", got, n, cmd, root)
		}
	}
}

func startSupervisord(b *testing.B, dir string, n int) *exec.Cmd {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "[supervisord]\nnodaemon=true\nlogfile=%s/supervisord.log\npidfile=%s/supervisord.pid\nchildlogdir=%s\nuser=root\n\n", dir, dir, dir)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&conf, "[program:c%03d]\ncommand=sleep %d\nautorestart=true\nstartsecs=0\nstdout_logfile=NONE\nstderr_logfile=NONE\n\n", i, miniAgentBase+10000+i)
	}
	path := filepath.Join(dir, "supervisord.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("supervisord", "-c", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	waitChildren(b, cmd.Process.Pid, "sleep", n, func(p int) []int { return []int{p} })
	return cmd
}

func startS6(b *testing.B, dir string, n int) *exec.Cmd {
	for i := 0; i < n; i++ {
		svc := filepath.Join(dir, fmt.Sprintf("c%03d", i))
		if err := os.MkdirAll(svc, 0o755); err != nil {
			b.Fatal(err)
		}
		run := fmt.Sprintf("#!/bin/sh\nexec sleep %d\n", miniAgentBase+20000+i)
		if err := os.WriteFile(filepath.Join(svc, "run"), []byte(run), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	cmd := exec.Command("s6-svscan", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = exec.Command("s6-svscanctl", "-t", dir).Run()
		_ = cmd.Wait()
		for _, p := range descendantsByCmd(miniAgentBase+20000, n) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	waitChildren(b, cmd.Process.Pid, "sleep", n, func(p int) []int { return children(p, "s6-supervise") })
	return cmd
}

// descendantsByCmd finds live `sleep base+i` processes.
func descendantsByCmd(base, n int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 2 && filepath.Base(args[0]) == "sleep" {
			if v, err := strconv.Atoi(args[1]); err == nil && v >= base && v < base+n {
				out = append(out, pid)
			}
		}
	}
	return out
}

// children lists the live children of pid whose command name is comm.
func children(pid int, comm string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || !pidAlive(p) || ppid(p) != pid {
			continue
		}
		c, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if strings.TrimSpace(string(c)) == comm {
			out = append(out, p)
		}
	}
	return out
}

// cpuSeconds sums utime+stime of pids from /proc (clock ticks of 10 ms).
func cpuSeconds(pids ...int) float64 {
	var ticks uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		u, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		ticks += u + st
	}
	return float64(ticks) / 100
}

// rssMiB sums VmRSS of pids.
func rssMiB(pids ...int) float64 {
	var kb uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				f := strings.Fields(line)
				v, _ := strconv.ParseUint(f[1], 10, 64)
				kb += v
			}
		}
	}
	return float64(kb) / 1024
}
