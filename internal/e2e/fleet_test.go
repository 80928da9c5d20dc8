package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fleetcore "github.com/keystone-edge/keystone/comms/fleet"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// fleetComponent is the one component the fleet tests roll out, the same
// recipe on every device. Its process fails at once (a line on stderr,
// status 3) on a device whose id has a file in failDir, and its install
// takes a minute on a device whose id has a file in slowDir: how a test
// makes chosen devices fail or hang with one manifest for all.
const fleetComponent = "com.fleet.app"

// rollout is N real agents on one broker, a TUF repository over HTTP, and
// keystonectl fleet with its fleet.toml and state file.
type rollout struct {
	t        *testing.T
	broker   *mqtttest.Broker
	repoDir  string
	devs     []*device
	fleetCfg string
	failDir  string
	slowDir  string
}

func newRollout(t *testing.T, n int) *rollout {
	t.Helper()
	r := &rollout{t: t, broker: mqtttest.Start(t, mqtttest.Options{Persistence: true}), repoDir: t.TempDir(),
		failDir: t.TempDir(), slowDir: t.TempDir()}
	if err := tufrepo.Init(r.repoDir, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(tufrepo.ServedDir(r.repoDir))))
	t.Cleanup(srv.Close)
	keys := t.TempDir()
	runCtl(t, "keys", "generate", "--out", filepath.Join(keys, "ops"))
	for range n {
		d := newDevice(t, deviceOptions{
			keyPair: [2]string{filepath.Join(keys, "ops.key"), filepath.Join(keys, "ops.pub")},
			top:     `groups = ["pos"]`,
			trust: func(d *device) string {
				return fmt.Sprintf("tuf_root = %q\nrepository = %q", tufrepo.RootFile(r.repoDir), srv.URL)
			},
			extra: func(d *device) string {
				id := r.broker.Device(t, "e2e-"+d.tag)
				return fmt.Sprintf("[artifacts]\nallow_http = true\n\n[mqtt]\nbroker = %q\nca_file = %q\ncert_file = %q\nkey_file = %q\n",
					r.broker.URL, id.CAFile, id.CertFile, id.KeyFile)
			},
		})
		r.devs = append(r.devs, d)
	}
	var wg sync.WaitGroup
	for _, d := range r.devs {
		wg.Go(func() { d.start() })
	}
	wg.Wait()
	ctl := r.broker.ControllerIdentity(t)
	r.fleetCfg = filepath.Join(t.TempDir(), "fleet.toml")
	cfg := fmt.Sprintf("broker = %q\nca_file = %q\ncert_file = %q\nkey_file = %q\nstate = %q\nsign_key = %q\n",
		r.broker.URL, ctl.CAFile, ctl.CertFile, ctl.KeyFile, filepath.Join(t.TempDir(), "fleet.db"), filepath.Join(keys, "ops.key"))
	if err := os.WriteFile(r.fleetCfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		r.publish(v)
	}
	return r
}

// runCtl runs the built keystonectl without a device.
func runCtl(t *testing.T, args ...string) result {
	t.Helper()
	d := &device{t: t, dir: t.TempDir(), sock: "/nonexistent"}
	return d.ctl(args...)
}

// publish adds version v of the fleet component to the repository. Only
// 2.0.0 fails on the devices listed in failDir: 1.0.0 is what they go back
// to.
func (r *rollout) publish(version string) {
	r.t.Helper()
	src := r.t.TempDir()
	recipe := filepath.Join(src, "app.recipe.toml")
	failDir := r.failDir
	if version != "2.0.0" {
		failDir = filepath.Join(r.failDir, "never")
	}
	text := fmt.Sprintf(`format = 1
[metadata]
name    = %q
version = %q
kind    = "process"

[lifecycle.install]
script  = "test -f %s/${device.id} && sleep 60; true"
timeout = "2m"

[lifecycle.run]
script         = "test -f %s/${device.id} && { echo 'cannot reach the till' >&2; exit 3; }; exec sleep 1000"
restart_policy = "never"
`, fleetComponent, version, r.slowDir, failDir)
	if err := os.WriteFile(recipe, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if _, err := tufrepo.Add(r.repoDir, recipe, nil, tufrepo.Options{}); err != nil {
		r.t.Fatal(err)
	}
	if _, err := tufrepo.Publish(r.repoDir, tufrepo.Options{}); err != nil {
		r.t.Fatal(err)
	}
}

// manifest is a deployment of version v of the fleet component.
func (r *rollout) manifest(v string) string {
	r.t.Helper()
	path := filepath.Join(r.t.TempDir(), "deployment.toml")
	text := fmt.Sprintf("format = 1\n[deployment]\nhealth_timeout = \"10s\"\n\n[[components]]\nname = %q\nversion = %q\n", fleetComponent, v)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// fleet runs keystonectl fleet with the rollout's fleet.toml.
func (r *rollout) fleet(args ...string) result {
	r.t.Helper()
	return r.devs[0].ctl(append([]string{"fleet", "--config", r.fleetCfg}, args...)...)
}

// version is what version of the fleet component device d runs ("" for
// none), and in which state.
func (d *device) fleetVersion() (version, state string) {
	c, ok := d.components()[fleetComponent]
	if !ok {
		return "", ""
	}
	return c.Version, c.State
}

// Acceptance 1: 20 real agents, a rollout in rings 10%, 50%, 100%: every
// device ends on the new version, the rollout SUCCEEDED, and fleet status
// shows each ring's counts.
func TestFleetRolloutToTwentyAgents(t *testing.T) {
	t.Parallel()
	r := newRollout(t, 20)
	res := r.fleet("deploy", "-f", r.manifest("1.0.0"), "--target", "group:pos", "--id", "r1",
		"--rings", "10%,50%,100%", "--soak", "1s", "--rate", "600/m", "--wait")
	if res.code != 0 {
		t.Fatalf("fleet deploy --wait: %s", res)
	}
	for _, d := range r.devs {
		if v, st := d.fleetVersion(); v != "1.0.0" || st != "RUNNING" {
			t.Errorf("device %s runs %q (%s)", d.tag, v, st)
		}
	}
	var status map[string]any
	st := r.fleet("-o", "json", "status", "r1")
	if err := json.Unmarshal([]byte(st.stdout), &status); err != nil || st.code != 0 {
		t.Fatalf("fleet status -o json: %v\n%s", err, st)
	}
	text := r.fleet("status", "r1").stdout
	if !strings.Contains(text, "SUCCEEDED") || !strings.Contains(text, "10%") || !strings.Contains(text, "50%") || !strings.Contains(text, "100%") {
		t.Errorf("fleet status does not show each ring:\n%s", text)
	}
	for _, d := range r.devs {
		d.stop()
	}
}

// Acceptance 3: a device whose job never finishes is TIMED_OUT at the
// device timeout; a device offline when its ring starts is OFFLINE, and
// when it comes back it runs the job (retained) and the rollout records it.
func TestFleetTimedOutAndOfflineDevices(t *testing.T) {
	t.Parallel()
	r := newRollout(t, 4)
	slow, away := r.devs[0], r.devs[1]
	if err := os.WriteFile(filepath.Join(r.slowDir, "e2e-"+slow.tag), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	away.stop()
	res := r.fleet("deploy", "-f", r.manifest("1.0.0"), "--target", "group:pos", "--id", "r3",
		"--soak", "1s", "--rate", "600/m", "--device-timeout", "8s", "--max-failure-rate", "100%")
	if res.code != 0 {
		t.Fatalf("fleet deploy: %s", res)
	}
	serve := r.startServe()
	defer serve.stop(t)
	r.waitStatus("r3", time.Minute, func(s string) bool { return strings.Contains(s, "TIMED_OUT") && strings.Contains(s, "OFFLINE") })
	away.start()
	r.waitStatus("r3", 2*time.Minute, func(s string) bool {
		return !strings.Contains(s, "OFFLINE")
	})
	if v, st := away.fleetVersion(); v != "1.0.0" || st != "RUNNING" {
		t.Errorf("the device that was offline runs %q (%s) after it came back", v, st)
	}
	for _, d := range r.devs {
		d.stop()
	}
}

// waitStatus polls fleet status id until ok says so.
func (r *rollout) waitStatus(id string, deadline time.Duration, ok func(string) bool) string {
	r.t.Helper()
	end := time.Now().Add(deadline)
	for {
		s := r.fleet("status", id).stdout
		if ok(s) {
			return s
		}
		if time.Now().After(end) {
			r.t.Fatalf("fleet status %s never got there:\n%s", id, s)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// serveProc is a running keystonectl fleet serve.
type serveProc struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

// startServe runs keystonectl fleet serve in the background.
func (r *rollout) startServe() *serveProc {
	r.t.Helper()
	log := filepath.Join(r.t.TempDir(), "serve.log")
	f, err := os.Create(log)
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(built.ctl, "fleet", "--config", r.fleetCfg, "serve")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	f.Close()
	p := &serveProc{cmd: cmd, log: log, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p
}

// stop interrupts it (Ctrl-C) and waits.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("fleet serve did not stop within 30s of SIGINT:\n%s", tail(p.log, 20))
	}
}

// kill SIGKILLs it and waits.
func (p *serveProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// ringsOf is the ring of each device id of the rollout, as the controller
// decides them.
func (r *rollout) ringsOf(id string, fractions []float64) map[string]int {
	var ids []string
	for _, d := range r.devs {
		ids = append(ids, "e2e-"+d.tag)
	}
	ordered, rings := fleetcore.AssignRings(id, ids, fractions)
	out := map[string]int{}
	for i, dev := range ordered {
		out[dev] = rings[i]
	}
	return out
}

// hasJob reports whether device d ever got job id (its deployment).
func (d *device) hasJob(id string) bool {
	for _, dep := range d.deployments() {
		if dep.ID == id {
			return true
		}
	}
	return false
}

// Acceptance 2: 3 of 20 devices fail with a failure budget of 10% after 5
// executed: the rollout halts in the ring that crosses it, the next ring
// never gets a job, fleet status names the failed devices with their error
// codes, and with --on-halt rollback the devices that took the new
// deployment are back on the previous one.
func TestFleetHaltsOnTheFailureBudgetAndRollsBack(t *testing.T) {
	t.Parallel()
	r := newRollout(t, 20)
	if res := r.fleet("deploy", "-f", r.manifest("1.0.0"), "--target", "group:pos", "--id", "base",
		"--soak", "1s", "--rate", "600/m", "--wait"); res.code != 0 {
		t.Fatalf("the first rollout: %s", res)
	}
	rings := r.ringsOf("r2", []float64{0.1, 0.5, 1})
	var failing []string
	for dev, ring := range rings {
		if ring == 1 && len(failing) < 3 {
			failing = append(failing, dev)
			if err := os.WriteFile(filepath.Join(r.failDir, dev), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	res := r.fleet("deploy", "-f", r.manifest("2.0.0"), "--target", "group:pos", "--id", "r2",
		"--rings", "10%,50%,100%", "--max-failure-rate", "10%", "--min-executed", "5", "--on-halt", "rollback",
		"--soak", "1s", "--rate", "600/m", "--wait")
	if res.code == 0 {
		t.Fatalf("a rollout over its failure budget succeeded: %s", res)
	}
	// It halts as soon as the budget is crossed, possibly with failing
	// devices still running their job: the rollout stays open for their
	// outcome, which fleet serve records once it comes.
	serve := r.startServe()
	var status string
	named := 0
	deadline := time.Now().Add(time.Minute)
	for named < len(failing) && time.Now().Before(deadline) {
		status = r.fleet("status", "r2").stdout
		named = 0
		for _, dev := range failing {
			if strings.Contains(status, dev) {
				named++
			}
		}
		time.Sleep(pollEvery)
	}
	serve.stop(t)
	if !strings.Contains(status, "HALTED") {
		t.Errorf("fleet status does not say it halted:\n%s", status)
	}
	if named < len(failing) {
		t.Errorf("fleet status names %d of the failed devices %v:\n%s", named, failing, status)
	}
	if !strings.Contains(status, "COMPONENT_FAILED") {
		t.Errorf("fleet status lacks the error code:\n%s", status)
	}
	for _, d := range r.devs {
		id := "e2e-" + d.tag
		if rings[id] == 2 && d.hasJob("r2-"+id) {
			t.Errorf("device %s of the last ring got a job after the halt", id)
		}
	}
	for _, d := range r.devs {
		d.waitFor(d.tag+" back on 1.0.0", time.Minute, func() bool {
			v, st := d.fleetVersion()
			return v == "1.0.0" && st == "RUNNING"
		})
	}
	for _, d := range r.devs {
		d.stop()
	}
}

// Acceptance 4: fleet serve is SIGKILLed at 10 moments during a rollout
// and started again each time: the rollout finishes with every device
// SUCCEEDED once, and every device ran its job exactly once.
func TestFleetControllerSurvivesKills(t *testing.T) {
	t.Parallel()
	r := newRollout(t, 20)
	if res := r.fleet("deploy", "-f", r.manifest("1.0.0"), "--target", "group:pos", "--id", "r4",
		"--rings", "10%,50%,100%", "--soak", "1s", "--rate", "60/m"); res.code != 0 {
		t.Fatalf("fleet deploy: %s", res)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for range 10 {
		s := r.startServe()
		time.Sleep(time.Duration(300+rng.IntN(1700)) * time.Millisecond)
		s.kill()
	}
	s := r.startServe()
	defer s.stop(t)
	r.waitStatus("r4", 3*time.Minute, func(st string) bool { return strings.Contains(st, "SUCCEEDED 20") })
	for _, d := range r.devs {
		id := "e2e-" + d.tag
		n := 0
		for _, dep := range d.deployments() {
			if dep.ID == "r4-"+id {
				n++
			}
		}
		if n != 1 {
			t.Errorf("device %s ran job r4-%s %d times", id, id, n)
		}
		if v, st := d.fleetVersion(); v != "1.0.0" || st != "RUNNING" {
			t.Errorf("device %s runs %q (%s)", id, v, st)
		}
	}
	for _, d := range r.devs {
		d.stop()
	}
}

// Acceptance 5: fleet pause stops new jobs within a tick, resume goes on;
// fleet cancel sends cancel jobs, and a device whose deployment had not
// finished reports CANCELED.
func TestFleetPauseResumeCancel(t *testing.T) {
	t.Parallel()
	r := newRollout(t, 6)
	for _, d := range r.devs { // their installs take a minute: still running at the cancel
		if err := os.WriteFile(filepath.Join(r.slowDir, "e2e-"+d.tag), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if res := r.fleet("deploy", "-f", r.manifest("1.0.0"), "--target", "group:pos", "--id", "r5",
		"--soak", "1s", "--rate", "20/m", "--device-timeout", "10m"); res.code != 0 {
		t.Fatalf("fleet deploy: %s", res)
	}
	s := r.startServe()
	defer s.stop(t)
	published := func() int {
		n := 0
		for _, d := range r.devs {
			if d.hasJob("r5-e2e-" + d.tag) {
				n++
			}
		}
		return n
	}
	r.devs[0].waitFor("a first job", time.Minute, func() bool { return published() >= 1 })
	if res := r.fleet("pause", "r5"); res.code != 0 {
		t.Fatalf("fleet pause: %s", res)
	}
	// fleet serve takes the pause at its next tick and records the rollout
	// PAUSED; from then on no device leaves PENDING. The jobs it sent before
	// are let reach their devices: after that, nothing may arrive.
	var sent int
	r.devs[0].waitFor("fleet serve to take the pause", time.Minute, func() bool {
		var s fleetcore.Summary
		st := r.fleet("-o", "json", "status", "r5")
		if st.code != 0 || json.Unmarshal([]byte(st.stdout), &s) != nil || s.Phase != fleetcore.PhasePaused {
			return false
		}
		sent = len(r.devs) - s.Counts[fleetcore.Pending] - s.Counts[fleetcore.Offline]
		return true
	})
	r.devs[0].waitFor("the jobs sent before the pause to arrive", time.Minute, func() bool { return published() >= sent })
	before := published()
	time.Sleep(7 * time.Second) // two publish slots at 20/m
	if after := published(); after != before {
		t.Errorf("jobs went out while paused: %d -> %d", before, after)
	}
	if res := r.fleet("resume", "r5"); res.code != 0 {
		t.Fatalf("fleet resume: %s", res)
	}
	r.devs[0].waitFor("jobs again after resume", time.Minute, func() bool { return published() > before })
	if res := r.fleet("cancel", "r5"); res.code != 0 {
		t.Fatalf("fleet cancel: %s", res)
	}
	status := r.waitStatus("r5", 2*time.Minute, func(st string) bool { return strings.Contains(st, "CANCELED") })
	if !strings.Contains(status, "CANCELED") {
		t.Errorf("fleet status after cancel:\n%s", status)
	}
	// A device with its job in flight takes the cancel at its deployment's
	// next safe point: give it the time to get there.
	inFlight := func() (running, canceled int) {
		for _, d := range r.devs {
			for _, dep := range d.deployments() {
				if dep.ID == "r5-e2e-"+d.tag {
					switch dep.Status {
					case "CANCELED":
						canceled++
					case "QUEUED", "IN_PROGRESS":
						running++
					}
				}
			}
		}
		return running, canceled
	}
	r.devs[0].waitFor("the devices with a job in flight to report CANCELED", 2*time.Minute, func() bool {
		running, _ := inFlight()
		return running == 0
	})
	if _, canceled := inFlight(); canceled == 0 {
		t.Errorf("no device whose deployment was running reports CANCELED:\n%s", status)
	}
	for _, d := range r.devs {
		d.stop()
	}
}
