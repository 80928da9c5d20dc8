package fleetsim

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/mqtttest"
)

// The benchmarks host their devices (simulated or bare) in worker
// processes: the test binary run again with TestFleetWorker, each worker
// running one part of the fleet under its own open-file limit. A simulated
// device holds about six files (its connection, its store's connections on
// the database and its WAL, the shared memory), so one process with a
// limit of 20,000 hosts at most about 3,200 of them; 10,000 need four.
// The floor's bare clients are laid out the same way, so that the ratio
// compares like with like. The broker and the controller stay in the
// benchmark's own process (or, for keystonectl, in their own).

const (
	// envWorker carries a worker's brief (JSON) to the test binary.
	envWorker = "KEYSTONE_FLEETSIM_WORKER"
	// EnvBenchWorkers sets how many worker processes host the devices;
	// unset, as few as the open-file limit allows.
	EnvBenchWorkers = "KEYSTONE_BENCH_WORKERS"
	// EnvBenchProfile names a folder where every worker writes a CPU
	// profile of its measured part (from every device connected to the
	// stop) and the rollout benchmark a summary of CPU use per process.
	EnvBenchProfile = "KEYSTONE_BENCH_PROFILE"
)

// workerBrief says what one worker hosts.
type workerBrief struct {
	Kind     string // "sim": simulated devices; "raw": the floor's bare clients
	Broker   mqtttest.Shared
	N        int // devices in the whole fleet
	From, To int // this worker's part: devices From to To-1
	Seed     uint64
	SignKey  []byte // the ed25519 key the simulated devices trust (a key made for the run)
	Profile  string // CPU profile file; empty for none
}

// workerReport is one line a worker writes to the report pipe: "ready"
// once its devices are all connected, "done" once they stopped.
type workerReport struct {
	Phase  string
	Setup  float64 // seconds from the worker's start to every device connected
	Files  int     // files the worker held open when ready
	Counts Counts  // sim: the stand-in engines' counters; raw: Received counts the answers
	CPU    float64 // done: user+system seconds from ready to the stop request
	MaxRSS float64 // done: peak RSS, MiB
}

// TestFleetWorker is a worker process of the fleet benchmarks; run as an
// ordinary test it skips. It reads its brief from the environment, starts
// its devices, reports on file 3 and stops them when its standard input
// closes.
func TestFleetWorker(t *testing.T) {
	raw := os.Getenv(envWorker)
	if raw == "" {
		t.Skip("a worker process of the fleet benchmarks; runs only when they start it")
	}
	var brief workerBrief
	if err := json.Unmarshal([]byte(raw), &brief); err != nil {
		t.Fatalf("%s: %v", envWorker, err)
	}
	report := json.NewEncoder(os.NewFile(3, "report"))
	start := time.Now()
	br := mqtttest.Attach(t, brief.Broker)
	var stop func() Counts
	switch brief.Kind {
	case "sim":
		sim := Start(t, br, Options{N: brief.N, From: brief.From, To: brief.To, Seed: brief.Seed,
			SignKey: ed25519.PrivateKey(brief.SignKey)})
		stop = func() Counts { sim.Stop(); return sim.Counts() }
	case "raw":
		r := startRawDevices(t, br, brief.N, brief.From, brief.To)
		stop = func() Counts { r.close(); return Counts{Received: r.answered.Load()} }
	default:
		t.Fatalf("worker kind %q", brief.Kind)
	}
	if err := report.Encode(workerReport{Phase: "ready", Setup: time.Since(start).Seconds(), Files: openFiles()}); err != nil {
		t.Fatal(err)
	}
	if brief.Profile != "" {
		f, err := os.Create(brief.Profile)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	cpu0 := cpuSeconds()
	_, _ = io.Copy(io.Discard, os.Stdin) // until the benchmark closes it
	cpu := cpuSeconds() - cpu0
	if brief.Profile != "" {
		pprof.StopCPUProfile()
	}
	counts := stop()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	if err := report.Encode(workerReport{Phase: "done", Counts: counts, CPU: cpu, MaxRSS: float64(ru.Maxrss) / 1024}); err != nil {
		t.Fatal(err)
	}
}

// cpuSeconds is this process's user and system time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procCPUSeconds is process pid's user and system time so far (from
// /proc/pid/stat, in clock ticks of 1/100 s); 0 when it cannot be read.
func procCPUSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // from field 3, state
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100
}

func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// procFileLimit is process pid's open-file limit (soft), from
// /proc/pid/limits; 0 when it cannot be read.
func procFileLimit(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

// devicesPerWorker is how many simulated devices one process can host
// under the open-file limit it inherits.
func devicesPerWorker() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1000
	}
	return max(1, int((max(lim.Cur, 1024)-512)/filesPerDevice))
}

// workerCount is how many processes host a fleet of n.
func workerCount(tb testing.TB, n int) int {
	if v := os.Getenv(EnvBenchWorkers); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			tb.Fatalf("%s=%q: want a positive number of processes", EnvBenchWorkers, v)
		}
		return min(k, n)
	}
	per := devicesPerWorker()
	return (n + per - 1) / per
}

// workers are the running worker processes of one fleet.
type workers struct {
	tb    testing.TB
	kind  string
	procs []*workerProc
	once  sync.Once
	done  []workerReport
}

type workerProc struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	reports chan workerReport
	out     lockedBuffer
	exited  chan struct{}
	ready   workerReport
}

// lockedBuffer collects a worker's output for the benchmark's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWorkers starts k processes that host a fleet of brief.N devices of
// brief.Kind, the fleet split evenly between them, and returns once every
// device is connected.
func startWorkers(tb testing.TB, brief workerBrief, k int) *workers {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	w := &workers{tb: tb, kind: brief.Kind}
	tb.Cleanup(func() { w.stop() })
	profDir := os.Getenv(EnvBenchProfile)
	for i := range k {
		bf := brief
		bf.From, bf.To = i*brief.N/k, (i+1)*brief.N/k
		p := &workerProc{name: fmt.Sprintf("%s worker %d (devices %d-%d)", brief.Kind, i, bf.From, bf.To-1),
			reports: make(chan workerReport, 2), exited: make(chan struct{})}
		if profDir != "" {
			bf.Profile = filepath.Join(profDir, fmt.Sprintf("%s-%d-worker-%d.pprof", brief.Kind, brief.N, i))
		}
		js, err := json.Marshal(bf)
		if err != nil {
			tb.Fatal(err)
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			tb.Fatal(err)
		}
		p.cmd = exec.Command(exe, "-test.run=^TestFleetWorker$", "-test.count=1", "-test.timeout=0")
		p.cmd.Env = append(os.Environ(), envWorker+"="+string(js))
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		p.cmd.ExtraFiles = []*os.File{pw}
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			tb.Fatal(err)
		}
		if err := p.cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		pw.Close()
		go func() {
			defer close(p.reports)
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				var r workerReport
				if json.Unmarshal(sc.Bytes(), &r) == nil {
					p.reports <- r
				}
			}
			pr.Close()
		}()
		go func() {
			_ = p.cmd.Wait()
			close(p.exited)
		}()
		w.procs = append(w.procs, p)
	}
	for _, p := range w.procs {
		r, ok := <-p.reports
		if !ok || r.Phase != "ready" {
			<-p.exited
			tb.Fatalf("%s stopped before its devices connected: %v\n%s", p.name, p.cmd.ProcessState, p.out.String())
		}
		p.ready = r
	}
	return w
}

// setup is the longest worker's time to connect its devices; files the
// most files one worker held.
func (w *workers) setup() (secs float64, files int) {
	for _, p := range w.procs {
		secs, files = max(secs, p.ready.Setup), max(files, p.ready.Files)
	}
	return secs, files
}

// cpu is the CPU seconds the workers used so far, read from outside.
func (w *workers) cpu() float64 {
	var s float64
	for _, p := range w.procs {
		s += procCPUSeconds(p.cmd.Process.Pid)
	}
	return s
}

// stop closes every worker's input, waits for its last report and its
// exit, and returns the reports; a second call returns the first's.
func (w *workers) stop() []workerReport {
	w.once.Do(func() {
		for _, p := range w.procs {
			_ = p.stdin.Close()
		}
		for _, p := range w.procs {
			var last workerReport
			for r := range p.reports {
				last = r
			}
			select {
			case <-p.exited:
			case <-time.After(2 * time.Minute):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
			if last.Phase != "done" || !p.cmd.ProcessState.Success() {
				w.tb.Errorf("%s did not stop cleanly: %v\n%s", p.name, p.cmd.ProcessState, p.out.String())
			}
			w.done = append(w.done, last)
		}
	})
	return w.done
}

// sumReports adds the workers' final reports up.
func sumReports(reports []workerReport) (c Counts, cpu, maxRSS float64) {
	for _, r := range reports {
		c.Received += r.Counts.Received
		c.Succeeded += r.Counts.Succeeded
		c.Failed += r.Counts.Failed
		c.Canceled += r.Counts.Canceled
		cpu += r.CPU
		maxRSS = max(maxRSS, r.MaxRSS)
	}
	return c, cpu, maxRSS
}

// simID is the id of simulated device i of n, as Start names it.
func simID(i, n int) string { return fmt.Sprintf("sim-%0*d", len(fmt.Sprint(n-1)), i) }
