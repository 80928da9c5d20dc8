package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// cleanly and the script exits 0, leaving no component process behind. A
// second run keeps the demo folder: an edited deployment is what it deploys.
func TestMakeDemo(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("the demo needs bash: %v", err)
	}
	demoDir := filepath.Join(shortDir(t), "demo")
	bin := t.TempDir()
	out := runDemo(t, demoDir, bin, nil)
	if strings.Contains(out, "kept from an earlier run") {
		t.Errorf("a first run kept files:\n%s", out)
	}

	// The user edits the deployment, as the README suggests, and runs the
	// demo again: the edit is kept and deployed.
	manifest := filepath.Join(demoDir, "deployment.toml")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "hello from the KeyStone demo", "hello from an edited demo", 1)
	if edited == string(data) {
		t.Fatalf("the demo deployment has no greeting to edit:\n%s", data)
	}
	if err := os.WriteFile(manifest, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	port := regexp.MustCompile(`(?m)^port *= *(\d+)`).FindStringSubmatch(edited)
	if port == nil {
		t.Fatalf("no port in the demo deployment:\n%s", edited)
	}
	out = runDemo(t, demoDir, bin, func(*api.Client) {
		resp, err := http.Get("http://127.0.0.1:" + port[1] + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "hello from an edited demo") {
			t.Errorf("the edited greeting was not deployed: the service says %q", body)
		}
	})
	if !strings.Contains(out, "kept from an earlier run") || !strings.Contains(out, "deployment.toml") {
		t.Errorf("the second run did not say what it kept:\n%s", out)
	}
	if got, _ := os.ReadFile(manifest); string(got) != edited {
		t.Errorf("the second run replaced the edited deployment:\n%s", got)
	}
}

// runDemo runs scripts/demo.sh until it says it is running, checks that
// its components run (and whatever check says), stops it with SIGINT and
// returns its output.
func runDemo(t *testing.T, demoDir, bin string, check func(*api.Client)) string {
	t.Helper()
	script, err := filepath.Abs("../../scripts/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "DEMO_DIR="+demoDir, "BIN="+bin, "DEMO_SECONDS=0")
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
	if check != nil {
		check(c)
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
	return out.String()
}
