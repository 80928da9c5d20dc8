package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tenProcesses is the set the hand-over tests run: ten components, eight
// svc processes (one printing a numbered line every 5 ms) and two metrics
// plugins.
func tenProcesses() []comp {
	set := make([]comp, 10)
	for i := range set {
		set[i] = comp{short: fmt.Sprintf("p%d", i), version: "1.0.0", plugin: i >= 8}
	}
	set[0].tick = "5ms"
	return set
}

// Acceptance: a re-execution in place (SIGHUP, what systemctl reload
// sends) a hundred times in a row with ten components: the agent keeps its
// pid, no component is restarted (same pid, same start time, restart
// count 0), not a line of output is lost, and the agent's descriptors and
// memory stay flat.
//
// Not parallel: it measures the agent's descriptors and memory, so it runs
// while the package's parallel tests wait.
func TestReloadHandsOverInPlaceAHundredTimes(t *testing.T) {
	reloads := 100
	if testing.Short() {
		reloads = 10
	}
	d := newDevice(t, deviceOptions{})
	agent := d.start()
	set := tenProcesses()
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("v1", manifestOptions{}, set...), "--wait")
	pids := d.requireRunning(set...)
	ticks := startTicks(t, pids)
	agentPid := agent.cmd.Process.Pid

	var fds, rss []int
	for i := 1; i <= reloads; i++ {
		d.reload(i)
		fds = append(fds, countFDs(t, agentPid))
		rss = append(rss, rssKiB(t, agentPid))
	}
	if agent.exited() {
		t.Fatalf("the agent process ended:\n%s", tail(agent.log, 40))
	}
	// The last image may still be taking the components over.
	if got := d.waitRunning(set...); fmt.Sprint(got) != fmt.Sprint(pids) {
		t.Errorf("pids after %d reloads: %v, before: %v", reloads, got, pids)
	}
	if got := startTicks(t, pids); fmt.Sprint(got) != fmt.Sprint(ticks) {
		t.Errorf("start times after the reloads: %v, before: %v", got, ticks)
	}
	for name, c := range d.components() {
		if c.Restarts != 0 {
			t.Errorf("%s: %d restarts", name, c.Restarts)
		}
	}
	d.requireEveryTick(set[0])
	// Plugin runs (one every 200 ms here), API calls and probes open
	// descriptors for a moment, ten at a time: the floor of a window of
	// samples is what stays open. Halves, so that a run of ten samples
	// caught mid-run does not pass for a leak; a leak of one descriptor
	// per reload still shows as fifty.
	window := len(fds) / 2
	first, last := slices.Min(fds[:window]), slices.Min(fds[len(fds)-window:])
	t.Logf("agent descriptors, least of the first and of the last %d reloads: %d, %d; RSS %d KiB → %d KiB", window, first, last, rss[0], rss[len(rss)-1])
	if last > first+2 {
		t.Errorf("descriptors grew from %d to %d over %d reloads: %v", first, last, reloads, fds)
	}
	if rss[len(rss)-1] > rss[0]+rss[0]/2 {
		t.Errorf("RSS grew from %d KiB to %d KiB over %d reloads", rss[0], rss[len(rss)-1], reloads)
	}
	d.stop()
	for short, pid := range pids {
		if pid != 0 && syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still runs after the agent stopped", short, pid)
		}
	}
}

// reload sends SIGHUP and waits until the agent says it is ready for the
// n-th time since it started (the first start counts 0).
func (d *device) reload(n int) {
	d.t.Helper()
	if err := d.agent.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	d.waitFor(fmt.Sprintf("reload %d to finish", n), time.Minute, func() bool {
		if d.agent.exited() {
			d.t.Fatalf("the agent ended during reload %d (%v):\n%s", n, d.agent.err, tail(d.agent.log, 40))
		}
		return countLines(d.agent.log, `"msg":"agent ready"`) >= n+1
	})
}

// requireEveryTick checks that the log of c (svc --tick) holds every
// number from 1 to its last, once each, in order.
func (d *device) requireEveryTick(c comp) {
	d.t.Helper()
	data, err := os.ReadFile(filepath.Join(d.dataDir, "logs", d.name(c.short)+".log"))
	if err != nil {
		d.t.Fatal(err)
	}
	re := regexp.MustCompile(`tick (\d+)\s*$`)
	want := 1
	for _, line := range strings.Split(string(data), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if n != want {
			d.t.Fatalf("tick %d follows tick %d in the log of %s", n, want-1, c.short)
		}
		want++
	}
	if want < 100 {
		d.t.Fatalf("only %d ticks in the log of %s", want-1, c.short)
	}
}

func countLines(path, substr string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), substr)
}

func startTicks(t *testing.T, pids map[string]int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for short, pid := range pids {
		if pid == 0 {
			continue // a plugin
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		out[short] = fields[19] // field 22 of the whole line: the start time
	}
	return out
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
