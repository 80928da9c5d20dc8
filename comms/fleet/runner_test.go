package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"

	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/fleet"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/store"
)

// bench is a real broker, devices that report a retained state, a farm
// connection that sees every job published, and a state file.
type bench struct {
	t       *testing.T
	b       *mqtttest.Broker
	ctlCfg  controller.Config
	state   *store.Fleet
	devices map[string]*mqtttest.Conn
	seq     map[string]uint64
	farm    *mqtttest.Conn
}

func newBench(t *testing.T, ids ...string) *bench {
	t.Helper()
	b := mqtttest.Start(t, mqtttest.Options{})
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := b.ControllerIdentity(t)
	st, err := store.OpenFleet(t.Context(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	be := &bench{t: t, b: b, state: st, devices: map[string]*mqtttest.Conn{}, seq: map[string]uint64{},
		ctlCfg: controller.Config{BrokerURL: b.URL, CAFile: id.CAFile, CertFile: id.CertFile, KeyFile: id.KeyFile,
			SignKey: priv, ReconnectBackoff: autopaho.NewConstantBackoff(100 * time.Millisecond)}}
	// The farm watches every device's jobs; it uses the controller's
	// identity (allowed on keystone/#) under its own client id.
	be.farm = b.Dial(t, id, mqtttest.DialOptions{ClientID: "farm"})
	be.farm.AwaitUp(t)
	be.farm.MustSubscribe(t, "keystone/+/jobs/notify", 1)
	for _, d := range ids {
		c := b.Dial(t, b.Device(t, d), mqtttest.DialOptions{})
		c.AwaitUp(t)
		be.devices[d] = c
		body, _ := json.Marshal(message.State{DeviceID: d, Seq: 1, Online: true, Groups: []string{"pos"},
			Healthy: true, Components: []message.ComponentStatus{{Name: "com.example.app", Version: "1.0.0", State: "RUNNING"}}})
		c.MustPublish(t, "keystone/"+d+"/state", body, 1, true)
	}
	return be
}

func (be *bench) runner() *fleet.Runner {
	be.t.Helper()
	return be.runnerLogging(testWriter{t: be.t})
}

func (be *bench) runnerLogging(w testWriter) *fleet.Runner {
	be.t.Helper()
	r, err := fleet.OpenRunner(be.t.Context(), fleet.RunnerConfig{Controller: be.ctlCfg, State: be.state,
		TickInterval: 50 * time.Millisecond, Settle: 300 * time.Millisecond, PublishTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(w, nil))})
	if err != nil {
		be.t.Fatal(err)
	}
	return r
}

// nextJob waits for the next job the farm sees, with its raw document.
func (be *bench) nextJob() (message.Job, []byte) {
	be.t.Helper()
	m := be.farm.Next(be.t)
	var j message.Job
	if err := json.Unmarshal(m.Payload, &j); err != nil {
		be.t.Fatalf("job on %s: %v", m.Topic, err)
	}
	return j, m.Payload
}

// answer publishes status for j from its device, as its agent would; the
// same status twice when dup (a redelivery: same seq).
func (be *bench) answer(j message.Job, status string, dup bool) {
	be.t.Helper()
	be.seq[j.DeviceID]++
	body, _ := json.Marshal(message.JobStatus{DeviceID: j.DeviceID, JobID: j.JobID, Seq: be.seq[j.DeviceID],
		Status: status, AgentVersion: "1.0.0", TS: time.Now()})
	topic := message.Topics{Prefix: "keystone", DeviceID: j.DeviceID}.JobStatus(j.JobID)
	be.devices[j.DeviceID].MustPublish(be.t, topic, body, 1, false)
	if dup {
		be.devices[j.DeviceID].MustPublish(be.t, topic, body, 1, false)
	}
}

type waited struct {
	sum fleet.Summary
	err error
}

func wait(r *fleet.Runner, ctx context.Context, id string) chan waited {
	ch := make(chan waited, 1)
	go func() {
		s, err := r.Wait(ctx, id)
		ch <- waited{s, err}
	}()
	return ch
}

func config(id string, targets []string) fleet.Config {
	return fleet.Config{ID: id, Job: fleet.Template{Kind: message.KindDeployment, Manifest: "format = 1\n"},
		Targets: targets, Rings: []float64{0.5, 1}, MaxFailureRate: 0.5}
}

// A rollout to a group, resolved from the devices' retained states, walks
// its two rings and succeeds; a status delivered twice counts once.
func TestRunnerRolloutSucceedsAcrossRings(t *testing.T) {
	be := newBench(t, "pos-1", "pos-2", "pos-3", "pos-4")
	r := be.runner()
	defer r.Close(context.WithoutCancel(t.Context()))
	targets, err := r.Resolve(t.Context(), []string{"group:pos"})
	if err != nil || len(targets) != 4 {
		t.Fatalf("group:pos resolved to %v, %v; want the 4 devices", targets, err)
	}
	if _, err := r.Create(t.Context(), config("r1", targets)); err != nil {
		t.Fatal(err)
	}
	done := wait(r, t.Context(), "r1")
	jobs := map[string]int{}
	for range 4 {
		j, _ := be.nextJob()
		jobs[j.DeviceID]++
		if j.JobID != "r1-"+j.DeviceID || j.RolloutID != "r1" {
			t.Errorf("job %s for %s in rollout %s", j.JobID, j.DeviceID, j.RolloutID)
		}
		be.answer(j, message.StatusSucceeded, true)
	}
	var w waited
	select {
	case w = <-done:
	case <-time.After(mqtttest.WaitTimeout):
		t.Fatal("the rollout did not finish")
	}
	if w.err != nil || w.sum.Phase != fleet.PhaseSucceeded || w.sum.Counts[fleet.Succeeded] != 4 {
		t.Fatalf("summary %+v, %v; want 4 SUCCEEDED", w.sum, w.err)
	}
	if len(w.sum.Rings) != 2 || w.sum.Rings[0].Devices != 2 || w.sum.Rings[1].Devices != 2 {
		t.Errorf("rings %+v; want two of 2 devices", w.sum.Rings)
	}
	if len(jobs) != 4 {
		t.Errorf("jobs per device %v; want one for each of 4", jobs)
	}
	recorded, err := be.state.StatusesOfJobs(t.Context(), "r1-")
	if err != nil || len(recorded) != 4 {
		t.Errorf("recorded statuses %d, %v; want 4 (each delivered twice, kept once)", len(recorded), err)
	}
	if ro, err := be.state.Rollout(t.Context(), "r1"); err != nil || ro.Open || ro.Phase != "SUCCEEDED" {
		t.Errorf("stored rollout %+v, %v; want closed, SUCCEEDED", ro, err)
	}
}

// A runner stopped mid-rollout and a new one opened on the same state file
// continue it: the unanswered job goes out again byte for byte, and no
// device ever gets a different job.
func TestRunnerContinuesAfterRestart(t *testing.T) {
	be := newBench(t, "pos-1", "pos-2", "pos-3", "pos-4")
	r1 := be.runner()
	targets, err := r1.Resolve(t.Context(), []string{"device:pos-1", "device:pos-2", "device:pos-3", "device:pos-4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Create(t.Context(), config("r2", targets)); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := wait(r1, ctx, "r2")
	first, _ := be.nextJob()
	be.answer(first, message.StatusSucceeded, false)
	second, doc := be.nextJob()
	// Stop before the second device answers; its job is on record as
	// published and unacknowledged.
	stop()
	<-done
	if err := r1.Close(context.WithoutCancel(t.Context())); err != nil {
		t.Fatal(err)
	}

	r2 := be.runner()
	defer r2.Close(context.WithoutCancel(t.Context()))
	done = wait(r2, t.Context(), "r2")
	again, doc2 := be.nextJob()
	if again.JobID != second.JobID || string(doc2) != string(doc) {
		t.Fatalf("after the restart the runner published %s (%s); want %s again, identical", again.JobID, doc2, second.JobID)
	}
	sent := map[string]string{first.DeviceID: first.JobID, second.DeviceID: second.JobID}
	be.answer(again, message.StatusSucceeded, false)
	for range 2 {
		j, _ := be.nextJob()
		if prev, ok := sent[j.DeviceID]; ok && prev != j.JobID {
			t.Errorf("%s got %s after %s", j.DeviceID, j.JobID, prev)
		}
		sent[j.DeviceID] = j.JobID
		be.answer(j, message.StatusSucceeded, false)
	}
	var w waited
	select {
	case w = <-done:
	case <-time.After(mqtttest.WaitTimeout):
		t.Fatal("the rollout did not finish after the restart")
	}
	if w.err != nil || w.sum.Phase != fleet.PhaseSucceeded || w.sum.Counts[fleet.Succeeded] != 4 || len(sent) != 4 {
		t.Fatalf("summary %+v, %v, devices reached %v; want 4 SUCCEEDED", w.sum, w.err, sent)
	}
}

// finish waits for a Wait to return.
func finish(t *testing.T, done chan waited) waited {
	t.Helper()
	select {
	case w := <-done:
		return w
	case <-time.After(mqtttest.WaitTimeout):
		t.Fatal("the rollout did not finish")
		return waited{}
	}
}

// A rollout that halts under on-halt rollback sends each device that took
// its deployment the one it ran before: the manifest of the last job that
// succeeded on it in an earlier rollout, or else one made from its
// retained state. Devices that failed get nothing.
func TestRunnerHaltRollsBackToThePreviousManifest(t *testing.T) {
	be := newBench(t, "pos-1", "pos-2", "pos-3", "pos-4")
	r := be.runner()
	defer r.Close(context.WithoutCancel(t.Context()))
	const manifestA = "format = 1\n\n[[components]]\nname = \"com.example.app\"\nversion = \"2.0.0\"\n"
	const manifestB = "format = 1\n\n[[components]]\nname = \"com.example.app\"\nversion = \"3.0.0\"\n"
	first := config("r0", []string{"pos-1", "pos-2"})
	first.Job.Manifest = manifestA
	if _, err := r.Create(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	done := wait(r, t.Context(), "r0")
	for range 2 {
		j, _ := be.nextJob()
		be.answer(j, message.StatusSucceeded, false)
	}
	if w := finish(t, done); w.err != nil || w.sum.Phase != fleet.PhaseSucceeded {
		t.Fatalf("first rollout %+v, %v; want SUCCEEDED", w.sum, w.err)
	}

	cfg := config("r1", []string{"pos-1", "pos-2", "pos-3", "pos-4"})
	cfg.Job.Manifest, cfg.Rings, cfg.MinExecuted, cfg.MaxFailureRate, cfg.OnHalt = manifestB, nil, 4, 0.25, fleet.HaltRollback
	if _, err := r.Create(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	done = wait(r, t.Context(), "r1")
	for range 4 {
		j, _ := be.nextJob()
		if j.Deployment == nil || j.Deployment.Manifest != manifestB {
			t.Fatalf("job %s carries %+v; want manifest B", j.JobID, j.Deployment)
		}
		status := message.StatusSucceeded
		if j.DeviceID == "pos-2" || j.DeviceID == "pos-4" {
			status = message.StatusFailed
		}
		be.answer(j, status, false)
	}
	rollbacks := map[string]string{}
	for range 2 {
		j, _ := be.nextJob()
		if j.JobID != "r1-"+j.DeviceID+"-rollback" || j.Kind != message.KindDeployment || j.Deployment == nil {
			t.Fatalf("after the halt: job %s (%s) for %s; want a rollback deployment", j.JobID, j.Kind, j.DeviceID)
		}
		rollbacks[j.DeviceID] = j.Deployment.Manifest
	}
	w := finish(t, done)
	if w.err != nil || w.sum.Phase != fleet.PhaseHalted {
		t.Fatalf("summary %+v, %v; want HALTED", w.sum, w.err)
	}
	if len(rollbacks) != 2 || rollbacks["pos-1"] != manifestA {
		t.Errorf("rollbacks %q; want pos-1 back on manifest A and pos-3 on its reported state", rollbacks)
	}
	if m := rollbacks["pos-3"]; !strings.Contains(m, "name = \"com.example.app\"\nversion = \"1.0.0\"") {
		t.Errorf("pos-3's rollback manifest %q; want com.example.app 1.0.0 from its retained state", m)
	}
	deployed, err := be.state.Deployments(t.Context())
	if err != nil || deployed["pos-1"].Manifest != manifestB || deployed["pos-2"].Manifest != manifestA {
		t.Errorf("recorded deployments %+v, %v; want pos-1 on B (its r1 job succeeded), pos-2 still on A", deployed, err)
	}
}

// testWriter logs to the test and, when watch is set, signals seen each
// time a line contains it.
type testWriter struct {
	t     *testing.T
	watch string
	seen  chan struct{}
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	if w.watch != "" && strings.Contains(string(p), w.watch) {
		select {
		case w.seen <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// A broker that goes away mid-rollout stalls nothing and loses nothing:
// the jobs it did not acknowledge are published again once it is back,
// and the rollout finishes SUCCEEDED.
func TestRunnerRidesOutABrokerOutage(t *testing.T) {
	be := newBench(t, "pos-1", "pos-2", "pos-3", "pos-4")
	failed := make(chan struct{}, 1)
	r := be.runnerLogging(testWriter{t: t, watch: "trying again at the next tick", seen: failed})
	defer r.Close(context.WithoutCancel(t.Context()))
	cfg := config("r3", []string{"pos-1", "pos-2", "pos-3", "pos-4"})
	cfg.Rings, cfg.Rate = nil, 120 // a job every half second
	if _, err := r.Create(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	done := wait(r, t.Context(), "r3")
	first, _ := be.nextJob()
	be.b.Stop(t)
	select {
	case <-failed:
	case <-time.After(mqtttest.WaitTimeout):
		t.Fatal("no publish failed while the broker was away")
	}
	// The loop goes on deciding while the broker is away: every device's
	// job comes due and is recorded as published, unacknowledged.
	deadline := time.Now().Add(mqtttest.WaitTimeout)
	for {
		sum, _, err := fleet.LoadSummary(t.Context(), be.state, "r3")
		if err == nil && sum.Counts[fleet.Published] == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while the broker was away: %+v, %v; want all 4 jobs decided", sum.Counts, err)
		}
		select {
		case <-time.After(20 * time.Millisecond): // polling the state file, not settling
		case <-t.Context().Done():
		}
	}
	be.b.Restart(t)
	be.farm.AwaitUp(t)
	be.farm.MustSubscribe(t, "keystone/+/jobs/notify", 1)
	for _, c := range be.devices {
		c.AwaitUp(t)
	}
	jobs := []message.Job{first}
	seen := map[string]bool{first.DeviceID: true}
	for len(seen) < 4 {
		j, _ := be.nextJob()
		if !seen[j.DeviceID] {
			seen[j.DeviceID] = true
			jobs = append(jobs, j)
		}
	}
	for _, j := range jobs {
		be.answer(j, message.StatusSucceeded, false)
	}
	w := finish(t, done)
	if w.err != nil || w.sum.Phase != fleet.PhaseSucceeded || w.sum.Counts[fleet.Succeeded] != 4 {
		t.Fatalf("summary %+v, %v; want 4 SUCCEEDED after the outage", w.sum, w.err)
	}
}
