package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/runner/logs"
)

// TestPollerReadsManyProcessesWholeAndInOrder: thirty processes write at
// once, each line of stdout in two writes (so the poller often holds a
// partial line) between lines of stderr; every line reaches its log,
// whole, in order, on its stream, and the poller ends once they are done.
func TestPollerReadsManyProcessesWholeAndInOrder(t *testing.T) {
	e := newEnv(t, "", false)
	const procs, lines = 30, 300
	script := `i=0; while [ $i -lt ` + strconv.Itoa(lines) + ` ]; do i=$((i+1))
printf 'out %d' $i; printf ' of %s\n' "$NAME"; printf 'err %d\n' $i >&2; done`
	var ps []*Process
	for i := range procs {
		name := fmt.Sprintf("com.example.many%d", i)
		ps = append(ps, e.start(t, ProcessSpec{Component: name, Script: script, Env: []string{"NAME=" + name}}))
	}
	for i, p := range ps {
		if st := p.Wait(); !st.Success() {
			t.Fatalf("process %d: %+v", i, st)
		}
		out, errs := e.logFile(t, p.Component())
		if len(out) != lines || len(errs) != lines {
			t.Fatalf("%s: %d stdout and %d stderr lines, want %d each", p.Component(), len(out), len(errs), lines)
		}
		for n := range lines {
			if want := fmt.Sprintf("out %d of %s", n+1, p.Component()); out[n] != want {
				t.Fatalf("%s: stdout line %d is %q, want %q", p.Component(), n+1, out[n], want)
			}
			if want := fmt.Sprintf("err %d", n+1); errs[n] != want {
				t.Fatalf("%s: stderr line %d is %q, want %q", p.Component(), n+1, errs[n], want)
			}
		}
		if st := p.Wait(); !strings.HasSuffix(st.StderrTail, fmt.Sprintf("err %d", lines)) {
			t.Fatalf("%s: stderr tail %q", p.Component(), st.StderrTail)
		}
	}
	waitPollerIdle(t, e.r)
}

// TestPollerCutsLongLinesAndKeepsThePartialLineAtExit: a line longer than
// MaxLineBytes comes in pieces of that size, and what follows the last
// newline when the process ends is a line of its own, on stdout as on
// stderr, and in the stderr tail.
func TestPollerCutsLongLinesAndKeepsThePartialLineAtExit(t *testing.T) {
	e := newEnv(t, "", false)
	p := e.start(t, ProcessSpec{Component: "com.example.long", Script: `head -c 10000 /dev/zero | tr '\0' x; echo
printf 'last words'; printf 'e1\r\ne2 partial' >&2; exit 4`})
	if st := p.Wait(); st.Code != 4 || st.StderrTail != "e1\r\ne2 partial" {
		t.Fatalf("status %+v", st)
	}
	out, errs := e.logFile(t, p.Component())
	x := strings.Repeat("x", logs.DefaultMaxLineBytes)
	want := []string{x, x, strings.Repeat("x", 10000-2*logs.DefaultMaxLineBytes), "last words"}
	if strings.Join(out, "|") != strings.Join(want, "|") {
		t.Errorf("stdout lines of %v bytes, want %v", lens(out), lens(want))
	}
	if strings.Join(errs, "|") != "e1|e2 partial" {
		t.Errorf("stderr lines %q", errs)
	}
}

// TestHandOverMidLineFlushesThePartialLineAndTheNextImageReadsOn: a line
// half read when the process is handed over goes to the log as it is;
// the rest, written after, is read from the same pipe by the process
// that adopts it.
func TestHandOverMidLineFlushesThePartialLineAndTheNextImageReadsOn(t *testing.T) {
	e := newEnv(t, "", false)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := ProcessSpec{Component: "com.example.midline", Script: `printf 'first half'; read -r x < "$FIFO"; echo ' second half'; echo done; exit 0`,
		Env: []string{"FIFO=" + fifo}, AllowRoot: true}
	p, _, err := e.r.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the partial line read", func() bool {
		e.r.poll.mu.Lock()
		defer e.r.poll.mu.Unlock()
		return p.stdout.lines.Partial()
	})
	h, err := p.HandOver()
	if err != nil {
		t.Fatal(err)
	}
	if got := e.tail(t, spec.Component); got != "first half\n" {
		t.Fatalf("log after the hand-over %q, want the partial line", got)
	}
	q, err := e.r.Adopt(spec, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, q); !st.Success() {
		t.Fatalf("status %+v", st)
	}
	if got := e.tail(t, spec.Component); got != "first half\n second half\ndone\n" {
		t.Fatalf("log %q", got)
	}
	waitPollerIdle(t, e.r)
}

// TestOutputOfAProcessThatOutlivesItsLeaderIsReadUntilTheDrainTimeout: a
// process that left the group (and there is no cgroup) writes after its
// leader has exited and been reaped; what it writes within the drain
// timeout is read, its partial line included, and then the reading ends
// although it still holds the pipes, so that Done closes.
func TestOutputOfAProcessThatOutlivesItsLeaderIsReadUntilTheDrainTimeout(t *testing.T) {
	e := newEnv(t, "", true)
	dir := t.TempDir()
	fifo, pidFile := filepath.Join(dir, "fifo"), filepath.Join(dir, "pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.start(t, ProcessSpec{Component: "com.example.escape", Script: `setsid sh -c 'echo $$ > "$PIDFILE.tmp"; mv "$PIDFILE.tmp" "$PIDFILE"; cat "$FIFO"; exec sleep 300' &
while [ ! -e "$PIDFILE" ]; do sleep 0.01; done; echo leader; exit 3`, Env: []string{"FIFO=" + fifo, "PIDFILE=" + pidFile}})
	var escaped int
	waitFor(t, "the escaped process's pid", func() bool {
		b, err := os.ReadFile(pidFile)
		escaped, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) })
	waitFor(t, "the leader reaped", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(p.Pid()))
		return os.IsNotExist(err)
	})
	if err := os.WriteFile(fifo, []byte("after the leader\npartial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, p); st.Code != 3 {
		t.Fatalf("status %+v", st)
	}
	if !alive(escaped) {
		t.Fatal("the escaped process is gone; the test proves nothing")
	}
	out, _ := e.logFile(t, p.Component())
	if strings.Join(out, "|") != "leader|after the leader|partial" {
		t.Fatalf("stdout lines %q", out)
	}
	waitPollerIdle(t, e.r)
}

// TestAStalledPollerLosesNoLine stands in for a slow log disk: while the
// poller cannot go on (its lock held, as during a long log write), a
// process fills its pipe and blocks; once it goes on, every line comes.
func TestAStalledPollerLosesNoLine(t *testing.T) {
	e := newEnv(t, "", false)
	const n = 20000 // about 110 KB: more than a pipe holds
	fifo := filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.start(t, ProcessSpec{Component: "com.example.stall", Script: `read -r x < "$FIFO"; exec seq 1 ` + strconv.Itoa(n),
		Env: []string{"FIFO=" + fifo}})
	e.r.poll.mu.Lock()
	if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
		e.r.poll.mu.Unlock()
		t.Fatal(err)
	}
	waitFor(t, "the writer blocked on its full pipe", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", p.Pid()))
		return strings.Contains(string(b), "pipe")
	})
	e.r.poll.mu.Unlock()
	if st := waitDone(t, p); !st.Success() {
		t.Fatalf("status %+v", st)
	}
	out, _ := e.logFile(t, p.Component())
	if len(out) != n {
		t.Fatalf("%d lines, want %d", len(out), n)
	}
	for i, line := range out {
		if line != strconv.Itoa(i+1) {
			t.Fatalf("line %d is %q", i+1, line)
		}
	}
}

// TestAChattyProcessDoesNotStarveAQuietOne: one process writes as fast as
// it can for as long as the test runs; another, writing a few lines,
// still has every line read and its end seen meanwhile.
func TestAChattyProcessDoesNotStarveAQuietOne(t *testing.T) {
	e := newEnv(t, "", false)
	chatty := e.start(t, ProcessSpec{Component: "com.example.chatty", Script: `exec yes`})
	e.waitLine(t, chatty.Component(), "y")
	quiet := e.start(t, ProcessSpec{Component: "com.example.quiet", Script: `for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.01; done`})
	if st := waitDone(t, quiet); !st.Success() {
		t.Fatalf("status %+v", st)
	}
	if got := e.tail(t, quiet.Component()); got != "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n" {
		t.Fatalf("quiet log %q", got)
	}
	select {
	case <-chatty.Done():
		t.Fatalf("the chatty process ended: %+v", chatty.Wait())
	default:
	}
}

// waitDone waits up to 30 s for p to end and returns how.
func waitDone(t *testing.T, p *Process) ExitStatus {
	t.Helper()
	select {
	case <-p.Done():
		return p.Wait()
	case <-time.After(30 * time.Second):
		t.Fatalf("%s has not ended after 30s", p.Component())
		return ExitStatus{}
	}
}

// waitFor polls cond until it holds, for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		<-time.After(5 * time.Millisecond)
	}
}

// waitPollerIdle waits until the poller's goroutine has ended, as it does
// once it watches nothing.
func waitPollerIdle(t *testing.T, r *Runner) {
	t.Helper()
	waitFor(t, "the poller to end", func() bool {
		r.poll.mu.Lock()
		defer r.poll.mu.Unlock()
		return r.poll.ep == nil && len(r.poll.procs) == 0
	})
}

// logFile reads the component's current log file: the texts of its
// stdout lines and of its stderr lines, in order.
func (e *testEnv) logFile(t *testing.T, component string) (stdout, stderr []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.logDir, component+".log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		_, text, ok := strings.Cut(rec, " ") // after the time stamp
		if !ok {
			t.Fatalf("record %q", rec)
		}
		if s, ok := strings.CutPrefix(text, "[stderr] "); ok {
			stderr = append(stderr, s)
		} else {
			stdout = append(stdout, text)
		}
	}
	return stdout, stderr
}

func lens(ss []string) []int {
	var n []int
	for _, s := range ss {
		n = append(n, len(s))
	}
	return n
}
