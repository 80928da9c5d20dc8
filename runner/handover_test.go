package runner

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// counting writes numbered lines until stopped.
const counting = `i=0; while :; do i=$((i+1)); echo "line $i"; sleep 0.005; done`

func TestHandOverAndAdoptKeepTheProcessAndEveryLine(t *testing.T) {
	e := newEnv(t, "", false)
	spec := ProcessSpec{Component: "com.example.count", Script: counting, AllowRoot: true}
	p, _, err := e.r.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	e.waitLine(t, spec.Component, "line 20")
	h, err := p.HandOver()
	if err != nil {
		t.Fatal(err)
	}
	// The process writes on into the pipe while nobody reads.
	time.Sleep(100 * time.Millisecond)
	q, err := e.r.Adopt(spec, h)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pid() != p.Pid() || q.StartTicks() != p.StartTicks() || q.CgroupPath() != p.CgroupPath() {
		t.Fatalf("adopted %d/%d/%s, handed over %d/%d/%s", q.Pid(), q.StartTicks(), q.CgroupPath(), p.Pid(), p.StartTicks(), p.CgroupPath())
	}
	last := e.waitLine(t, spec.Component, "line 100")
	st := q.Stop(context.Background(), StopOptions{Timeout: 5 * time.Second})
	if !st.Stopped {
		t.Errorf("status %+v, want stopped", st)
	}
	// Every number from 1 on, each once: nothing lost, nothing doubled.
	want := 1
	for _, line := range strings.Split(strings.TrimSpace(e.tail(t, spec.Component)), "\n") {
		_, n, ok := strings.Cut(line, "line ")
		if !ok {
			continue
		}
		got, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			t.Fatalf("line %q", line)
		}
		if got != want {
			t.Fatalf("line %d follows line %d (last seen %q)", got, want-1, last)
		}
		want++
	}
	if want < 100 {
		t.Fatalf("only %d lines", want-1)
	}
	if alive(p.Pid()) {
		t.Errorf("pid %d still alive after the stop", p.Pid())
	}
	cgroupDirsGone(t, e, p.CgroupPath())
}

func TestAProcessThatEndsDuringTheHandOverIsAdoptedWithItsStatus(t *testing.T) {
	e := newEnv(t, "", false)
	spec := ProcessSpec{Component: "com.example.short", Script: `echo started; sleep 0.2; echo bye; exit 7`, AllowRoot: true}
	p, _, err := e.r.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	e.waitLine(t, spec.Component, "started")
	h, err := p.HandOver()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // it exits meanwhile, and stays a zombie
	q, err := e.r.Adopt(spec, h)
	if err != nil {
		t.Fatal(err)
	}
	st := q.Wait()
	if st.Code != 7 || st.Stopped {
		t.Errorf("status %+v, want exit 7", st)
	}
	if !strings.Contains(e.tail(t, spec.Component), "bye") {
		t.Errorf("the line written during the hand-over is missing:\n%s", e.tail(t, spec.Component))
	}
}

func TestAdoptRefusesAProcessThatIsNotOurs(t *testing.T) {
	e := newEnv(t, "", false)
	spec := ProcessSpec{Component: "com.example.other", Script: "sleep 1", AllowRoot: true}
	p, _, err := e.r.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.HandOver()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]HandOver{
		"not a child":      {Record: Record{Component: spec.Component, PID: 1, StartTicks: 1}, Stdout: h.Stdout, Stderr: h.Stderr},
		"other start time": {Record: Record{Component: spec.Component, PID: h.PID, StartTicks: h.StartTicks + 1, CgroupPath: h.CgroupPath}, Stdout: h.Stdout, Stderr: h.Stderr},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			// Each refusal closes the descriptors it was given: hand copies.
			bad.Stdout, bad.Stderr = dupFd(t, h.Stdout), dupFd(t, h.Stderr)
			if _, err := e.r.Adopt(spec, bad); !errors.Is(err, ErrNoProcess) {
				t.Fatalf("Adopt = %v, want ErrNoProcess", err)
			}
		})
	}
	q, err := e.r.Adopt(spec, h)
	if err != nil {
		t.Fatal(err)
	}
	if st := q.Wait(); !st.Success() {
		t.Errorf("status %+v", st)
	}
}

func dupFd(t *testing.T, fd int) int {
	t.Helper()
	d, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
