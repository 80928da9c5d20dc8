package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/proctest"
)

// benchSleepBase is the first `sleep` argument of the programs supervisord
// and s6 run in BenchmarkIdle50 (the agent's are from sleepBase).
const benchSleepBase = 700000

// RSS and CPU seconds of the supervising process(es) over an idle window
// (KEYSTONE_BENCH_IDLE, default 60s) while 50 `sleep` processes with
// restart-on-failure are supervised: KeyStone (a real agent in a process
// of its own, see procAgent), supervisord and s6, side by side in the same
// window. Debian's supervisor and s6 packages are installed when missing.
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
		env := newProcEnv(b, "[trust]\nallow_unsigned = true\n")
		ks := env.start(b, startOptions{})
		ks.deploy(sleepers(b, "idle-50", sleepBase(env.root), n))
		ks.settle()
		sd := startSupervisord(b, filepath.Join(dir, "supervisord"), n)
		s6 := startS6(b, filepath.Join(dir, "s6"), n)

		tree := func(root int) []int { return append([]int{root}, children(root, "s6-supervise")...) }
		b.ResetTimer()
		cpu0 := [3]float64{proctest.CPUSeconds(ks.cmd.Process.Pid), proctest.CPUSeconds(sd.Process.Pid), proctest.CPUSeconds(tree(s6.Process.Pid)...)}
		timer := time.NewTimer(idle)
		<-timer.C
		cpu1 := [3]float64{proctest.CPUSeconds(ks.cmd.Process.Pid), proctest.CPUSeconds(sd.Process.Pid), proctest.CPUSeconds(tree(s6.Process.Pid)...)}
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

		ks.stop()
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
		fmt.Fprintf(&conf, "[program:c%03d]\ncommand=sleep %d\nautorestart=true\nstartsecs=0\nstdout_logfile=NONE\nstderr_logfile=NONE\n\n", i, benchSleepBase+10000+i)
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
		run := fmt.Sprintf("#!/bin/sh\nexec sleep %d\n", benchSleepBase+20000+i)
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
		for _, p := range descendantsByCmd(benchSleepBase+20000, n) {
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
		if err != nil || !proctest.Alive(p) || ppid(p) != pid {
			continue
		}
		c, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if strings.TrimSpace(string(c)) == comm {
			out = append(out, p)
		}
	}
	return out
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
