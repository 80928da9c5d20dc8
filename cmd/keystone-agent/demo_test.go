package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

// demoTimeout bounds the demo's start, which builds three programs.
const demoTimeout = 5 * time.Minute

// make demo works from the repository as it is: scripts/demo.sh builds the
// binaries and examples, starts an agent, deploys the signed examples; while
// it runs its components are RUNNING; SIGINT (Ctrl-C) stops the agent
// cleanly and the script exits 0, leaving no component process behind.
func TestMakeDemo(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("the demo needs bash: %v", err)
	}
	demoDir := filepath.Join(shortDir(t), "demo")
	script, err := filepath.Abs("../../scripts/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "DEMO_DIR="+demoDir, "BIN="+t.TempDir(), "DEMO_SECONDS=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	out := &lockedBuffer{}
	running := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if !signalled && strings.Contains(sc.Text(), "demo running") {
				close(running)
				signalled = true
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGINT)
		}
	})

	select {
	case <-running:
	case err := <-done:
		t.Fatalf("demo ended before it ran: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	case <-time.After(demoTimeout): // it builds the binaries first
		t.Fatalf("demo not running within %s\nstdout:\n%s\nstderr:\n%s", demoTimeout, out, stderr)
	}

	c := api.NewClient(filepath.Join(demoDir, "agent.sock"))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	comps, err := c.Components(ctx)
	if err != nil {
		t.Fatalf("components of the demo agent: %v", err)
	}
	var pids []int
	states := map[string]string{}
	for _, comp := range comps {
		states[comp.Name] = comp.State
		pids = append(pids, comp.Pid)
	}
	if states["com.example.hello-http"] != "RUNNING" || states["com.example.worker"] != "RUNNING" {
		t.Fatalf("demo components: %v\nstdout:\n%s", states, out)
	}
	for _, want := range []string{"com.example.hello-http", "keystone_component_state{", "keystone_agent_info"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exit after SIGINT: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
		}
	case <-time.After(waitFor):
		t.Fatalf("demo did not exit within %s of SIGINT\nstdout:\n%s", waitFor, out)
	}
	if !strings.Contains(out.String(), "the agent stopped cleanly") {
		t.Errorf("demo did not report a clean stop:\n%s", out)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("component process %d outlived the demo", pid)
		}
	}
}
