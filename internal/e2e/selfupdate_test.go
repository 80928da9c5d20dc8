package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/internal/svcmgr"
	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// The self-update tests run the agent the way production does: a service
// manager (internal/svcmgr, which behaves like systemd with Type=notify,
// WatchdogSec, Restart=always, KillMode=process) starts root/current/
// keystone-agent; releases come from a real TUF repository over HTTP.

// releaseBuilds builds, once per test binary, the agent at a version and
// the bad releases (testdata/badagent). Tests that run in parallel may ask
// for the same build at once: the first builds, the others wait for it.
var releaseBuilds sync.Map // key → *releaseBuild

type releaseBuild struct {
	once sync.Once
	path string
	err  error
}

func buildOnce(t *testing.T, key, pkg, ldflags string) string {
	t.Helper()
	v, _ := releaseBuilds.LoadOrStore(key, &releaseBuild{})
	b := v.(*releaseBuild)
	b.once.Do(func() {
		out := filepath.Join(filepath.Dir(built.agent), "release-"+key)
		cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
			return
		}
		b.path = out
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func agentRelease(t *testing.T, version string) string {
	return buildOnce(t, "agent-"+version, "../../cmd/keystone-agent", "-X main.version="+version)
}

func badRelease(t *testing.T, mode string) string {
	return buildOnce(t, "bad-"+mode, "./testdata/badagent", "-X main.mode="+mode)
}

// updateRig is one device run by a service manager, with a repository of
// agent releases.
type updateRig struct {
	t       *testing.T
	d       *device
	repoDir string
	root    string // the device's root_dir
	svc     *svcmgr.Manager
	log     string // the agent's output
	set     []comp
}

func newUpdateRig(t *testing.T, env ...string) *updateRig {
	t.Helper()
	r := &updateRig{t: t, repoDir: t.TempDir()}
	if err := tufrepo.Init(r.repoDir, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(tufrepo.ServedDir(r.repoDir))))
	t.Cleanup(srv.Close)
	r.d = newDevice(t, deviceOptions{
		trust: func(d *device) string {
			return fmt.Sprintf("tuf_root = %q\nrepository = %q", tufrepo.RootFile(r.repoDir), srv.URL)
		},
		extra: func(d *device) string { return "[artifacts]\nallow_http = true\n" },
	})
	r.root = filepath.Join(r.d.dir, "root")
	first := filepath.Join(r.root, "releases", "1.0.0")
	if err := os.MkdirAll(first, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, agentRelease(t, "1.0.0"), filepath.Join(first, "keystone-agent"))
	if err := os.Symlink("releases/1.0.0", filepath.Join(r.root, "current")); err != nil {
		t.Fatal(err)
	}
	r.publish("2.0.0", agentRelease(t, "2.0.0"))
	r.log = filepath.Join(r.d.dir, "agent-svc.log")
	logFile, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	r.svc, err = svcmgr.Start(ctx, svcmgr.Config{
		Exec: filepath.Join(r.root, "current", "keystone-agent"), Args: []string{"run", "--config", r.d.config},
		Env: append(os.Environ(), env...), Stdout: logFile, Stderr: logFile,
		WatchdogSec: 3 * time.Second, TimeoutStartSec: 30 * time.Second, RestartSec: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.svc.Close()
		cancel()
		if t.Failed() {
			t.Logf("agent output:\n%s", tail(r.log, 60))
		}
	})
	r.waitAPI()
	r.set = tenProcesses()
	r.d.ctlOK("deploy", "apply", "-f", r.d.writeDeployment("v1", manifestOptions{}, r.set...), "--wait")
	return r
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// publish adds an agent release to the repository.
func (r *updateRig) publish(version, agentFile string) {
	r.t.Helper()
	publishRelease(r.t, r.repoDir, version, agentFile)
}

// publishRelease adds an agent release to repository repoDir and publishes
// it the way an operator does, with keystonectl repo add --agent-release
// and repo publish. The built keystonectl packs the release (a gzip'd tar
// of the 30 MB agent) in seconds; tufrepo.AddRelease in this test binary,
// which -race instruments, takes about a minute.
func publishRelease(t *testing.T, repoDir, version, agentFile string) {
	t.Helper()
	for _, args := range [][]string{
		{"repo", "add", repoDir, "--agent-release", version, "--agent", agentFile},
		{"repo", "publish", repoDir},
	} {
		if r := runCtl(t, args...); r.code != 0 {
			t.Fatalf("keystonectl %s: %s", strings.Join(args, " "), r)
		}
	}
}

func (r *updateRig) waitAPI() {
	r.t.Helper()
	c := api.NewClient(r.d.sock)
	defer c.Close()
	r.d.waitFor("the agent's API", startDeadline, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Health(ctx) == nil
	})
}

// update runs keystonectl agent update VERSION --wait and returns the
// update as it ended, and the exit code.
func (r *updateRig) update(version string, extra ...string) (api.AgentUpdate, int) {
	r.t.Helper()
	res := r.d.ctl(append([]string{"-o", "json", "agent", "update", version, "--wait", "--timeout", "3m"}, extra...)...)
	var u api.AgentUpdate
	if err := json.Unmarshal([]byte(res.stdout), &u); err != nil {
		r.t.Fatalf("agent update %s: exit %d, not JSON: %v\nstdout: %s\nstderr: %s", version, res.code, err, res.stdout, res.stderr)
	}
	return u, res.code
}

// running is the version the agent answers as.
func (r *updateRig) running() string {
	r.t.Helper()
	c := api.NewClient(r.d.sock)
	defer c.Close()
	var version string
	r.d.waitFor("the agent to answer", time.Minute, func() bool {
		u, err := c.AgentUpdate(context.Background())
		version = u.Running
		return err == nil
	})
	return version
}

func (r *updateRig) current() string {
	r.t.Helper()
	target, err := os.Readlink(filepath.Join(r.root, "current"))
	if err != nil {
		r.t.Fatal(err)
	}
	return filepath.Base(target)
}

// Acceptance 1: an update to a good release with ten running components is
// committed in place: the same agent process (the service manager saw
// RELOADING=1 … READY=1, no exit), every component's pid and start time
// unchanged, no restart, no line of output lost.
func TestAgentUpdateToAGoodReleaseKeepsEveryComponent(t *testing.T) {
	t.Parallel()
	r := newUpdateRig(t)
	pids := r.d.requireRunning(r.set...)
	ticks := startTicks(t, pids)
	mainPid := r.svc.MainPID()

	begin := time.Now()
	u, code := r.update("2.0.0", "--health-timeout", "30s")
	took := time.Since(begin)
	if code != 0 || u.Phase != "committed" || u.RolledBack || u.Running != "2.0.0" {
		t.Fatalf("update: exit %d, %+v", code, u)
	}
	if got := r.current(); got != "2.0.0" {
		t.Errorf("current → %s, want 2.0.0", got)
	}
	if r.svc.MainPID() != mainPid || r.svc.Starts() != 1 || len(r.svc.Exits()) != 0 {
		t.Errorf("service main pid %d→%d, starts %d, exits %v: the agent process was replaced", mainPid, r.svc.MainPID(), r.svc.Starts(), r.svc.Exits())
	}
	if got := r.d.waitRunning(r.set...); fmt.Sprint(got) != fmt.Sprint(pids) {
		t.Errorf("pids after the update: %v, before: %v", got, pids)
	}
	if got := startTicks(t, pids); fmt.Sprint(got) != fmt.Sprint(ticks) {
		t.Errorf("start times after the update: %v, before: %v", got, ticks)
	}
	for name, c := range r.d.components() {
		if c.Restarts != 0 {
			t.Errorf("%s: %d restarts", name, c.Restarts)
		}
	}
	r.d.requireEveryTick(r.set[0])
	requireReloadThenReady(t, r.svc)
	t.Logf("update committed in %s (request to committed, through --wait)", took.Round(time.Millisecond))
}

// requireReloadThenReady checks that the service manager was told
// RELOADING=1 and then READY=1 by the same main pid.
func requireReloadThenReady(t *testing.T, svc *svcmgr.Manager) {
	t.Helper()
	reloading := -1
	for i, n := range svc.Notifications() {
		if n.Has("RELOADING=1") {
			reloading = i
		}
		if reloading >= 0 && i > reloading && n.Has("READY=1") {
			return
		}
	}
	t.Errorf("no RELOADING=1 followed by READY=1 in %v", svc.Notifications())
}

// trials is how many times each bad release is tried: KEYSTONE_UPDATE_TRIALS
// (10 for the full run), 2 by default.
func trials() int {
	if n, err := strconv.Atoi(os.Getenv("KEYSTONE_UPDATE_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 2
}

// Acceptance 2: each kind of bad release is reverted by itself and the
// update ends FAILED with rolled_back; where the old agent kept control
// (the release cannot be executed, or is never healthy), not one workload
// was restarted.
func TestAgentUpdateRevertsEveryBadRelease(t *testing.T) {
	t.Parallel()
	r := newUpdateRig(t)
	r.publish("3.0.1", badRelease(t, "exit1"))
	r.publish("3.0.2", badRelease(t, "segv"))
	r.publish("3.0.3", badRelease(t, "hang"))
	r.publish("3.0.4", notAnExecutable(t))
	cases := []struct {
		name, version string
		keepsPids     bool
		setup         func() (undo func())
	}{
		{"exits 1 at start", "3.0.1", false, nil},
		{"segfaults", "3.0.2", false, nil},
		{"hangs before READY", "3.0.3", false, nil},
		{"is not an executable", "3.0.4", true, nil},
		{"never becomes healthy", "2.0.0", true, r.unreachableBroker},
	}
	n := trials()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := r.d.sub(t)
			for trial := 1; trial <= n; trial++ {
				before := d.waitRunning(r.set...)
				undo := func() {}
				if c.setup != nil {
					undo = c.setup()
				}
				u, code := r.update(c.version, "--health-timeout", "4s")
				undo()
				if code == 0 || u.Phase != "failed" || !u.RolledBack || u.Running != "1.0.0" {
					t.Fatalf("trial %d: exit %d, %+v; want FAILED, rolled back, running 1.0.0", trial, code, u)
				}
				if got := r.current(); got != "1.0.0" {
					t.Fatalf("trial %d: current → %s", trial, got)
				}
				after := d.waitRunning(r.set...)
				if c.keepsPids && fmt.Sprint(after) != fmt.Sprint(before) {
					t.Fatalf("trial %d: pids %v, before %v: the old agent kept control, nothing should have restarted", trial, after, before)
				}
				t.Logf("trial %d: %s", trial, u.Detail)
			}
		})
	}
}

// notAnExecutable is a release whose agent is the real one with its
// program header count zeroed (a damaged file): it passes the publisher's
// platform check, and the kernel refuses to execute it (exec format
// error).
func notAnExecutable(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(agentRelease(t, "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keystone-agent")
	data[0x38], data[0x39] = 0, 0 // e_phnum of a 64-bit ELF header
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// unreachableBroker points the device at a broker that is not there, for
// the next image to read: a release that cannot connect is not healthy.
func (r *updateRig) unreachableBroker() (undo func()) {
	r.t.Helper()
	orig, err := os.ReadFile(r.d.config)
	if err != nil {
		r.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	broken := string(orig) + fmt.Sprintf("\n[mqtt]\nbroker = \"mqtt://%s\"\ninsecure = true\n", addr)
	if err := os.WriteFile(r.d.config, []byte(broken), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return func() { _ = os.WriteFile(r.d.config, orig, 0o644) }
}

// Acceptance 3: the agent killed with SIGKILL at every step of an update
// ends on exactly one release, the one current names, with every component
// running exactly once.
func TestAgentUpdateSurvivesAKillAtEveryStep(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"update:before-exec", "update:booted", "update:restoring", "update:before-commit", "update:after-commit"} {
		t.Run(strings.TrimPrefix(point, "update:"), func(t *testing.T) {
			t.Parallel() // each kill point is a rig of its own
			r := newUpdateRig(t, "KEYSTONE_FAULT_CRASH_AFTER_STEP="+point)
			res := r.d.ctl("agent", "update", "2.0.0", "--wait", "--timeout", "2m", "--health-timeout", "20s")
			if _, err := r.svc.WaitExits(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			r.waitAPI()
			// Whatever the update's end, the device runs one release: the one
			// current names, and the update record agrees with it.
			var u api.AgentUpdate
			r.d.waitFor("the update to end", 2*time.Minute, func() bool {
				c := api.NewClient(r.d.sock)
				defer c.Close()
				got, err := c.AgentUpdate(context.Background())
				u = got
				return err == nil && got.Finished
			})
			if u.Running != r.current() {
				t.Fatalf("running %s, current → %s (%+v); keystonectl said: %s%s", u.Running, r.current(), u, res.stdout, res.stderr)
			}
			if (u.Phase == "committed") != (u.Running == "2.0.0") {
				t.Fatalf("update %+v does not match the running release", u)
			}
			r.d.waitRunning(r.set...)
			t.Logf("killed at %s: %s, running %s", point, u.Phase, u.Running)
		})
	}
}

// An agent_update job over MQTT, through keystonectl fleet agent-update:
// each device fetches the release, executes it in place (the agent
// process and its component stay), commits it, and the rollout SUCCEEDED.
func TestFleetAgentUpdateOverMQTT(t *testing.T) {
	t.Parallel()
	r := newRollout(t, 2)
	if res := r.fleet("deploy", "-f", r.manifest("1.0.0"), "--target", "group:pos", "--id", "base", "--soak", "1s", "--wait"); res.code != 0 {
		t.Fatalf("fleet deploy: %s", res)
	}
	publishRelease(t, r.repoDir, "2.0.0", agentRelease(t, "2.0.0"))
	pids := map[string]int{}
	for _, d := range r.devs {
		pids[d.tag] = d.components()[fleetComponent].Pid
	}
	res := r.fleet("agent-update", "2.0.0", "--target", "group:pos", "--id", "au1", "--soak", "1s", "--wait")
	if res.code != 0 {
		t.Fatalf("fleet agent-update --wait: %s", res)
	}
	for _, d := range r.devs {
		if d.agent.exited() {
			t.Fatalf("device %s: the agent process ended", d.tag)
		}
		c := api.NewClient(d.sock)
		u, err := c.AgentUpdate(context.Background())
		c.Close()
		if err != nil || u.Running != "2.0.0" || u.Phase != "committed" || u.JobID == "" {
			t.Errorf("device %s: %+v, %v", d.tag, u, err)
		}
		if got := d.components()[fleetComponent].Pid; got != pids[d.tag] {
			t.Errorf("device %s: component pid %d, was %d", d.tag, got, pids[d.tag])
		}
	}
	for _, d := range r.devs {
		d.stop()
	}
}

// A package upgrade puts a release under releases/, points current at it
// and reloads the agent (SIGHUP): the agent runs it on trial as an update,
// so a good one is committed with every component kept, and a bad one is
// reverted — current pointed back — instead of being restarted forever.
func TestPackageUpgradeByReloadIsATrial(t *testing.T) {
	t.Parallel()
	r := newUpdateRig(t)
	install := func(version, agentFile string) {
		dir := filepath.Join(r.root, "releases", version)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, agentFile, filepath.Join(dir, "keystone-agent"))
		link := filepath.Join(r.root, "current.new")
		if err := os.Symlink("releases/"+version, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link, filepath.Join(r.root, "current")); err != nil {
			t.Fatal(err)
		}
		if err := r.svc.Kill(context.Background(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitUpdate := func(want string) api.AgentUpdate {
		var u api.AgentUpdate
		r.d.waitFor("the update to "+want+" to end", 2*time.Minute, func() bool {
			c := api.NewClient(r.d.sock)
			defer c.Close()
			got, err := c.AgentUpdate(context.Background())
			u = got
			return err == nil && got.To == want && got.Finished
		})
		return u
	}

	pids := r.d.requireRunning(r.set...)
	install("2.0.0", agentRelease(t, "2.0.0"))
	if u := waitUpdate("2.0.0"); u.Phase != "committed" || u.Running != "2.0.0" {
		t.Fatalf("good release: %+v", u)
	}
	if got := r.d.waitRunning(r.set...); fmt.Sprint(got) != fmt.Sprint(pids) {
		t.Errorf("pids after the upgrade: %v, before: %v", got, pids)
	}
	if r.current() != "2.0.0" || len(r.svc.Exits()) != 0 {
		t.Errorf("current → %s, service exits %v", r.current(), r.svc.Exits())
	}

	install("3.0.1", badRelease(t, "exit1"))
	u := waitUpdate("3.0.1")
	if u.Phase != "failed" || !u.RolledBack || u.Running != "2.0.0" || r.current() != "2.0.0" {
		t.Fatalf("bad release: %+v, current → %s", u, r.current())
	}
	r.d.waitRunning(r.set...)
}
