package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/internal/proctest"
	"golang.org/x/sys/unix"
)

// trimSettle is how long the agent is left after a deployment before its
// PSS is read: longer than its KEYSTONE_TRIM_AFTER (10s).
const trimSettle = 20 * time.Second

// The argument ranges of the `sleep` programs each supervisor of
// BenchmarkIdle50 runs, so that every process is known by its command line.
const (
	sleepKeystone    = 910000 // + i: the agent with 50 (later 100) components
	sleepNoTrim      = 920000 // + i: the same with KEYSTONE_TRIM_AFTER=0
	sleepSupervisord = 930000
	sleepS6          = 940000
)

// BenchmarkIdle50 compares KeyStone with the supervisors it replaces, all
// measured from outside in the same run: the shipped keystone-agent (with
// keystone-shim beside it), supervisord and s6, each supervising 50
// `sleep` processes restarted on failure; the agent also with no
// component, with no component and its MQTT connection up (mosquitto with
// mTLS when installed), and with 50 components and trimming off
// (KEYSTONE_TRIM_AFTER=0); and the floor: internal/memfloor, the smallest
// program that links the same runtime and opens the store.
//
// Once every agent has settled (20 s after its last deployment, past its
// trim) and after an idle window (KEYSTONE_BENCH_IDLE, default 60s) it
// reports each one's PSS
// from /proc/PID/smaps_rollup, the supervisor's own processes only (s6:
// s6-svscan and its 50 s6-supervise), split into anonymous and
// file-backed; CPU seconds and wake-ups (schedstat run counts of every
// thread) over the window. Then restart latency, SIGKILL of a component's
// process until its replacement is exec'd (the kernel's exec event, over
// the proc connector), alternating between the agent (restart_backoff 0s)
// and s6 (its services using s6's readiness protocol, without which
// s6-supervise waits a second before every restart), a kill of each every
// 2 s (s6 also waits when a service dies within a second of being
// ready) for KEYSTONE_BENCH_RESTARTS rounds (default 30); and cold
// start: the agent with its 50 components stopped, from its exec until the
// 50th component's process is exec'd, KEYSTONE_BENCH_COLDSTARTS times
// (default 5). Last, what a further component costs: the agent's PSS
// with 100 components less its PSS with 50, per component, each read 20 s
// after a start of the agent (in all and of it anonymous), and the same
// with the 100 read 20 s after their deployment instead
// (further-component-deployed: with what the deployment leaves behind).
// With -v it logs every restart's latency.
// Debian's supervisor and s6 packages are installed when missing.
func BenchmarkIdle50(b *testing.B) {
	idle := envDuration(b, "KEYSTONE_BENCH_IDLE", 60*time.Second)
	rounds := envInt(b, "KEYSTONE_BENCH_RESTARTS", 30)
	colds := envInt(b, "KEYSTONE_BENCH_COLDSTARTS", 5)
	ensureTool(b, "supervisord", "supervisor")
	ensureTool(b, "s6-svscan", "s6")
	const n = 50
	shim := buildTool(b, "../../cmd/keystone-shim", "keystone-shim")
	floorBin := buildTool(b, "../memfloor", "memfloor")
	if data, err := os.ReadFile(floorBin); err != nil || writeSynced(floorBin, data) != nil {
		b.Fatalf("sync memfloor: %v", err)
	}
	execs := watchExecs(b)

	for b.Loop() {
		floor := startFloor(b, floorBin)

		zero := newDevice(b, deviceOptions{allowUnsigned: true})
		zero.agentBin = shippedAgent(b, shim)
		zero.start()

		f := newFleet(b, mqtttest.Options{})
		f.dev.agentBin = shippedAgent(b, shim)
		f.dev.start()
		f.dev.waitFor("the MQTT connection", time.Minute, func() bool {
			return countLines(f.dev.agent.log, "connected to the MQTT broker") > 0
		})

		ks := newDevice(b, deviceOptions{allowUnsigned: true})
		ks.agentBin = shippedAgent(b, shim)
		ks.start()
		ks.ctlOK("deploy", "apply", "-f", ks.writeSleepers("idle-50", sleepKeystone, n), "--wait")

		noTrim := newDevice(b, deviceOptions{allowUnsigned: true})
		noTrim.agentBin = shippedAgent(b, shim)
		noTrim.start("KEYSTONE_TRIM_AFTER=0")
		noTrim.ctlOK("deploy", "apply", "-f", noTrim.writeSleepers("idle-50", sleepNoTrim, n), "--wait")
		// The idle window starts once every agent has settled: each trims
		// KEYSTONE_TRIM_AFTER after its last deployment, a burst of work
		// (two collections, and the program's pages read back as the code
		// after the page-out runs) that is not idleness.
		settled := time.Now().Add(trimSettle)

		sd := startSupervisord(b, b.TempDir(), n)
		s6dir := b.TempDir()
		s6 := startS6(b, s6dir, n)
		s6Tree := func() []int { return append([]int{s6.Process.Pid}, children(s6.Process.Pid, "s6-supervise")...) }

		type subject struct {
			name string
			pids func() []int
		}
		pid := func(c *exec.Cmd) func() []int { return func() []int { return []int{c.Process.Pid} } }
		subjects := []subject{
			{"keystone", pid(ks.agent.cmd)},
			{"keystone-notrim", pid(noTrim.agent.cmd)},
			{"keystone-0", pid(zero.agent.cmd)},
			{"keystone-mqtt-0", pid(f.dev.agent.cmd)},
			{"supervisord", pid(sd)},
			{"s6", s6Tree},
			{"floor", func() []int { return []int{floor.Process.Pid} }},
		}
		if wait := time.Until(settled); wait > 0 {
			pause := time.NewTimer(wait)
			<-pause.C
		}
		wake0 := map[string]uint64{}
		cpu0 := map[string]float64{}
		for _, s := range subjects {
			wake0[s.name], cpu0[s.name] = wakeups(s.pids()...), proctest.CPUSeconds(s.pids()...)
		}
		timer := time.NewTimer(idle)
		<-timer.C
		pss := map[string]pssFigures{}
		for _, s := range subjects {
			pss[s.name] = readPSS(b, s.pids()...)
			b.ReportMetric(pss[s.name].total, s.name+"-pss-MiB")
			b.ReportMetric(float64(wakeups(s.pids()...)-wake0[s.name])/idle.Seconds(), s.name+"-wakeups/s")
			b.ReportMetric(proctest.CPUSeconds(s.pids()...)-cpu0[s.name], s.name+"-cpu-s")
		}
		for _, name := range []string{"keystone", "keystone-0", "keystone-notrim"} {
			b.ReportMetric(pss[name].anon, name+"-anon-MiB")
			b.ReportMetric(pss[name].file, name+"-file-MiB")
		}
		b.ReportMetric(pss["keystone"].total/pss["supervisord"].total, "pss-ratio-vs-supervisord")
		b.ReportMetric(pss["keystone"].total/pss["s6"].total, "pss-ratio-vs-s6")
		b.ReportMetric((pss["keystone"].total-pss["keystone-0"].total)*1024/n, "keystone-KiB/component")
		b.ReportMetric(rssMiB(ks.agent.cmd.Process.Pid), "keystone-rss-MiB")
		b.ReportMetric(idle.Seconds(), "idle-s")

		// Restart latency, the agent and s6 taking turns.
		var ksTook, s6Took []time.Duration
		for range rounds {
			quiet := time.NewTimer(2 * time.Second)
			<-quiet.C
			ksTook = append(ksTook, killAndTime(b, execs, sleepKeystone))
			s6Took = append(s6Took, killAndTime(b, execs, sleepS6))
		}
		b.Logf("restarts, keystone: %v", ksTook)
		b.Logf("restarts, s6: %v", s6Took)
		p50, p99 := quantileMs(ksTook, 0.5), quantileMs(ksTook, 0.99)
		s6p50 := quantileMs(s6Took, 0.5)
		b.ReportMetric(p50, "keystone-restart-ms/p50")
		b.ReportMetric(p99, "keystone-restart-ms/p99")
		b.ReportMetric(s6p50, "s6-restart-ms/p50")
		b.ReportMetric(quantileMs(s6Took, 0.99), "s6-restart-ms/p99")
		// The first restart after the idle window reads the code of the
		// restart path back in (the trim paged the program out).
		b.ReportMetric(float64(ksTook[0])/float64(time.Millisecond), "keystone-restart-ms/first")
		b.ReportMetric(float64(s6Took[0])/float64(time.Millisecond), "s6-restart-ms/first")
		b.ReportMetric(p50/s6p50, "restart-p50-ratio-vs-s6")
		b.ReportMetric(p99/s6p50, "restart-p99-vs-s6-p50")

		// Cold start: the agent's 50 components stopped with it, started
		// again with it.
		var cold []time.Duration
		for range colds {
			ks.stop()
			execs.drain()
			t0 := monotonic()
			ks.start()
			cold = append(cold, execs.waitN(b, sleepKeystone, n, t0))
		}
		b.ReportMetric(quantileMs(cold, 0.5), "keystone-cold-start-50-ms/p50")
		b.ReportMetric(quantileMs(cold, 1), "keystone-cold-start-50-ms/max")

		// What a further component costs: the agent read 20 s after a
		// start (past its trim) with 50 components and again with 100, so
		// that both readings come from the same state and the difference
		// is the components. Read also right after the deployment of the
		// further 50 (past its trim): that includes what a deployment
		// leaves behind for a while (the set it replaced, kept for a
		// rollback, and the heap the burst grew).
		settle := time.NewTimer(trimSettle)
		<-settle.C
		at50 := readPSS(b, ks.agent.cmd.Process.Pid)
		ks.ctlOK("deploy", "apply", "-f", ks.writeSleepers("idle-100", sleepKeystone, 2*n), "--wait")
		settle.Reset(trimSettle)
		<-settle.C
		deployed := readPSS(b, ks.agent.cmd.Process.Pid)
		ks.stop()
		ks.start()
		settle.Reset(trimSettle)
		<-settle.C
		at100 := readPSS(b, ks.agent.cmd.Process.Pid)
		b.ReportMetric(at100.total, "keystone-100-pss-MiB")
		b.ReportMetric((at100.total-at50.total)*1024/n, "keystone-KiB/further-component")
		b.ReportMetric((at100.anon-at50.anon)*1024/n, "keystone-anon-KiB/further-component")
		b.ReportMetric((deployed.total-at50.total)*1024/n, "keystone-KiB/further-component-deployed")
		b.ReportMetric(0, "ns/op")

		ks.stop()
		noTrim.stop()
		zero.stop()
		f.dev.stop()
	}
}

// writeSleepers writes n unsigned recipes running `sleep base+i`,
// restarted at once on failure, and their deployment; it returns the
// manifest's path.
func (d *device) writeSleepers(id string, base, n int) string {
	d.t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		d.t.Fatal(err)
	}
	dir := filepath.Join(d.dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Fatal(err)
	}
	var m strings.Builder
	fmt.Fprintf(&m, "format = 1\n[deployment]\nid = %q\nhealth_timeout = \"60s\"\n", id)
	for i := range n {
		name := d.name(fmt.Sprintf("c%03d", i))
		recipe := fmt.Sprintf(`format = 1
[metadata]
name = %q
version = "1.0.0"
kind = "process"
[lifecycle.run]
command = %q
args = ["%d"]
restart_policy = "on-failure"
restart_backoff = { initial = "0s", max = "1s" }
max_restarts = { count = 100000, window = "1m" }
stop_timeout = "5s"
`, name, sleep, base+i)
		file := name + ".recipe.toml"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(recipe), 0o644); err != nil {
			d.t.Fatal(err)
		}
		fmt.Fprintf(&m, "[[components]]\nname = %q\nversion = \"1.0.0\"\nrecipe = %q\n", name, file)
	}
	path := filepath.Join(dir, "deployment.toml")
	if err := os.WriteFile(path, []byte(m.String()), 0o644); err != nil {
		d.t.Fatal(err)
	}
	return path
}

// shippedAgent is a copy of keystone-agent with a copy of the shim beside
// it, as the package installs them. Each agent measured runs its own copy:
// agents running one file would share its pages, and PSS would split
// them between the agents.
func shippedAgent(b *testing.B, shim string) string {
	dir := b.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for src, dst := range map[string]string{built.agent: "keystone-agent", shim: "keystone-shim"} {
		data, err := os.ReadFile(src)
		if err != nil {
			b.Fatal(err)
		}
		if err := writeSynced(filepath.Join(dir, dst), data); err != nil {
			b.Fatal(err)
		}
	}
	return filepath.Join(dir, "keystone-agent")
}

// writeSynced writes an executable and syncs it, as an installed release
// is: the kernel does not reclaim dirty pages of a file mapping, so a
// program written the moment before would keep them mapped.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// buildTool builds the program pkg as it ships (CGO_ENABLED=0).
func buildTool(b *testing.B, pkg, name string) string {
	out := filepath.Join(b.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// startFloor runs memfloor on a new store until the benchmark ends.
func startFloor(b *testing.B, bin string) *exec.Cmd {
	cmd := exec.Command(bin, filepath.Join(b.TempDir(), "keystone.db"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		b.Fatalf("memfloor: %q", line)
	}
	return cmd
}

type pssFigures struct{ total, anon, file float64 } // MiB

// readPSS sums the PSS of pids from /proc/PID/smaps_rollup.
func readPSS(b *testing.B, pids ...int) pssFigures {
	re := regexp.MustCompile(`(?m)^(Pss|Pss_Anon|Pss_File):\s+(\d+) kB`)
	var f pssFigures
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			kb, _ := strconv.ParseFloat(m[2], 64)
			switch m[1] {
			case "Pss":
				f.total += kb / 1024
			case "Pss_Anon":
				f.anon += kb / 1024
			case "Pss_File":
				f.file += kb / 1024
			}
		}
	}
	return f
}

// rssMiB sums VmRSS of pids.
func rssMiB(pids ...int) float64 {
	var kb float64
	for _, pid := range pids {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(data); m != nil {
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			kb += v
		}
	}
	return kb / 1024
}

// wakeups is how many times the threads of pids were put on a CPU (the
// run counts of /proc/PID/task/TID/schedstat).
func wakeups(pids ...int) uint64 {
	var n uint64
	for _, pid := range pids {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, t := range tasks {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if f := strings.Fields(string(data)); err == nil && len(f) == 3 {
				v, _ := strconv.ParseUint(f[2], 10, 64)
				n += v
			}
		}
	}
	return n
}

func quantileMs(ds []time.Duration, q float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1)+0.5)].Microseconds()) / 1000
}

// monotonic is CLOCK_MONOTONIC, the clock of the proc connector's events.
func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// killAndTime SIGKILLs the live `sleep arg` and returns how long until a
// new `sleep arg` was exec'd.
func killAndTime(b *testing.B, w *execWatch, arg int) time.Duration {
	pids := sleepsWithArg(arg)
	if len(pids) != 1 {
		b.Fatalf("%d processes run sleep %d, want 1", len(pids), arg)
	}
	w.drain()
	t0 := monotonic()
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		b.Fatal(err)
	}
	return w.waitN(b, arg, 1, t0)
}

// sleepsWithArg lists the live processes running `sleep arg`.
func sleepsWithArg(arg int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if a, ok := sleepArg(pid); ok && a == arg && proctest.Alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// sleepArg is the argument of the `sleep N` pid runs.
func sleepArg(pid int) (int, bool) {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	if len(args) != 2 || filepath.Base(args[0]) != "sleep" {
		return 0, false
	}
	v, err := strconv.Atoi(args[1])
	return v, err == nil
}

// execWatch receives the kernel's exec events (the proc connector,
// netlink; root) and keeps those of `sleep N` programs.
type execWatch struct {
	mu     sync.Mutex
	events []execEvent
	more   chan struct{} // signalled when events grows
}

type execEvent struct {
	arg int   // the N of `sleep N`
	at  int64 // CLOCK_MONOTONIC ns of the exec
}

func watchExecs(b *testing.B) *execWatch {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		b.Fatalf("proc connector: %v", err)
	}
	const cnIdxProc, procCnMcastListen, procEventExec = 1, 1, 2
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		b.Fatalf("proc connector: %v", err)
	}
	// nlmsghdr, cn_msg {idx, val, seq, ack, len, flags}, the operation.
	msg := make([]byte, 16+20+4)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(msg[16:], cnIdxProc)
	binary.NativeEndian.PutUint32(msg[20:], 1)
	binary.NativeEndian.PutUint16(msg[32:], 4)
	binary.NativeEndian.PutUint32(msg[36:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		b.Fatalf("proc connector: %v", err)
	}
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	w := &execWatch{more: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for ctx.Err() == nil {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n < 60 || binary.NativeEndian.Uint32(buf[36:]) != procEventExec {
				continue
			}
			at := int64(binary.NativeEndian.Uint64(buf[44:]))
			pid := int(binary.NativeEndian.Uint32(buf[52:]))
			if arg, ok := sleepArg(pid); ok {
				w.mu.Lock()
				w.events = append(w.events, execEvent{arg: arg, at: at})
				w.mu.Unlock()
				select {
				case w.more <- struct{}{}:
				default:
				}
			}
		}
	}()
	b.Cleanup(func() { cancel(); <-done; unix.Close(fd) })
	return w
}

// drain forgets the events seen so far.
func (w *execWatch) drain() {
	w.mu.Lock()
	w.events = nil
	w.mu.Unlock()
}

// waitN waits until k `sleep N` programs with N in [base, base+k) were
// exec'd and returns how long after t0 the last one was.
func (w *execWatch) waitN(b *testing.B, base, k int, t0 int64) time.Duration {
	deadline := time.After(time.Minute)
	for {
		w.mu.Lock()
		seen := map[int]int64{}
		for _, e := range w.events {
			if e.arg >= base && e.arg < base+k && e.at >= t0 {
				seen[e.arg] = e.at
			}
		}
		w.mu.Unlock()
		if len(seen) == k {
			last := int64(0)
			for _, at := range seen {
				last = max(last, at)
			}
			return time.Duration(last - t0)
		}
		select {
		case <-w.more:
		case <-deadline:
			b.Fatalf("only %d of %d `sleep %d…` exec'd within a minute", len(seen), k, base)
		}
	}
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s: want a positive count", name)
	}
	return n
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

// waitChildren waits until the processes under(root) have n live children
// running cmd between them.
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
	var conf strings.Builder
	fmt.Fprintf(&conf, "[supervisord]\nnodaemon=true\nlogfile=%s/supervisord.log\npidfile=%s/supervisord.pid\nchildlogdir=%s\nuser=root\n\n", dir, dir, dir)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&conf, "[program:c%03d]\ncommand=sleep %d\nautorestart=true\nstartsecs=0\nstdout_logfile=NONE\nstderr_logfile=NONE\n\n", i, sleepSupervisord+i)
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
		// s6's readiness protocol: the service says it is up on the
		// notification fd. Without it s6-supervise waits a second before
		// every restart; with it, only when the service was up for less
		// than a second.
		run := fmt.Sprintf("#!/bin/sh\necho >&3\nexec sleep %d 3>&-\n", sleepS6+i)
		if err := os.WriteFile(filepath.Join(svc, "run"), []byte(run), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(svc, "notification-fd"), []byte("3\n"), 0o644); err != nil {
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
		for i := range n {
			for _, p := range sleepsWithArg(sleepS6 + i) {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
	waitChildren(b, cmd.Process.Pid, "sleep", n, func(p int) []int { return children(p, "s6-supervise") })
	return cmd
}

// children lists the live children of pid whose command name is comm.
func children(pid int, comm string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || !proctest.Alive(p) {
			continue
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		if strings.TrimSpace(string(c)) == comm {
			out = append(out, p)
		}
	}
	return out
}
