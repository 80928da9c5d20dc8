package fleetsim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
)

// finals collects the final statuses a controller delivers, by device.
type finals struct {
	mu  sync.Mutex
	all map[string][]message.JobStatus
}

func (f *finals) add(st message.JobStatus) {
	switch st.Status {
	case message.StatusQueued, message.StatusInProgress:
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.all == nil {
		f.all = map[string][]message.JobStatus{}
	}
	f.all[st.DeviceID] = append(f.all[st.DeviceID], st)
}

func (f *finals) of(id string) []message.JobStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.all[id])
}

func connectController(t *testing.T, sim *Sim, onStatus func(message.JobStatus)) *controller.Controller {
	t.Helper()
	cfg := sim.ControllerConfig(t)
	cfg.OnStatus = onStatus
	ctx, cancel := context.WithTimeout(t.Context(), mqtttest.WaitTimeout)
	defer cancel()
	ctl, err := controller.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Close(context.Background()) })
	return ctl
}

func TestFleetOutcomes(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	sim := Start(t, b, Options{N: 20, Failing: 0.1, Silent: 0.05, Seed: 7})
	failing, silent := sim.WithRole(Failing), sim.WithRole(Silent)
	if len(failing) != 2 || len(silent) != 1 || len(sim.Devices()) != 20 {
		t.Fatalf("roles: %d failing, %d silent of %d; want 2, 1 of 20", len(failing), len(silent), len(sim.Devices()))
	}
	var got finals
	ctl := connectController(t, sim, got.add)
	ctx, cancel := context.WithTimeout(t.Context(), mqtttest.WaitTimeout)
	defer cancel()
	for _, id := range sim.Devices() {
		if err := ctl.PublishJob(ctx, Job(id, "job-1", "com.example.hello", "1.2.0")); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range sim.Devices() {
		switch sim.Role(id) {
		case Succeeding:
			if _, err := ctl.WaitStatus(ctx, id, "job-1", message.StatusSucceeded); err != nil {
				t.Fatalf("%s: no SUCCEEDED: %v", id, err)
			}
			st, err := ctl.WaitState(ctx, id, func(s message.State) bool {
				return s.Online && s.Healthy && s.LastJob != nil && s.LastJob.Status == message.StatusSucceeded
			})
			if err != nil {
				t.Fatalf("%s: no healthy state after its job: %v", id, err)
			}
			want := []message.ComponentStatus{{Name: "com.example.hello", Version: "1.2.0", State: "RUNNING"}}
			if !slices.Equal(st.Components, want) {
				t.Errorf("%s: state components %v; want %v", id, st.Components, want)
			}
		case Failing:
			st, err := ctl.WaitStatus(ctx, id, "job-1", message.StatusFailed)
			if err != nil {
				t.Fatalf("%s: no FAILED: %v", id, err)
			}
			if st.ErrorCode != "COMPONENT_FAILED" || !st.RolledBack {
				t.Errorf("%s: FAILED with error_code %q rolled_back %v; want COMPONENT_FAILED, true", id, st.ErrorCode, st.RolledBack)
			}
		case Silent:
			if _, err := ctl.WaitStatus(ctx, id, "job-1", message.StatusInProgress); err != nil {
				t.Fatalf("%s: the silent device did not take its job: %v", id, err)
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // room for a final status that should not come
	nSucceeded, nFailed := 0, 0
	for _, id := range sim.Devices() {
		fs := got.of(id)
		if sim.Role(id) == Silent {
			if len(fs) != 0 {
				t.Errorf("silent %s reported %v", id, fs)
			}
			continue
		}
		if len(fs) != 1 {
			t.Errorf("%s: %d final statuses; want 1: %v", id, len(fs), fs)
			continue
		}
		switch fs[0].Status {
		case message.StatusSucceeded:
			nSucceeded++
		case message.StatusFailed:
			nFailed++
		}
	}
	if nSucceeded != 17 || nFailed != 2 {
		t.Errorf("%d SUCCEEDED, %d FAILED; want 17, 2", nSucceeded, nFailed)
	}
	c := sim.Counts()
	if c.Received != 20 || c.Succeeded != 17 || c.Failed != 2 || c.Answered() != 19 {
		t.Errorf("counts %+v; want 20 received, 17 succeeded, 2 failed", c)
	}
}

func TestOfflineDeviceFindsItsJob(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	sim := Start(t, b, Options{N: 3, Offline: 0.34, Seed: 1, Slow: 10 * time.Millisecond})
	off := sim.Offline()
	if len(off) != 1 || sim.Connected(off[0]) {
		t.Fatalf("offline devices %v (connected %v); want one, not connected", off, len(off) == 1 && sim.Connected(off[0]))
	}
	ctl := connectController(t, sim, nil)
	ctx, cancel := context.WithTimeout(t.Context(), mqtttest.WaitTimeout)
	defer cancel()
	for _, id := range sim.Devices() {
		if err := ctl.PublishJob(ctx, Job(id, "job-a", "com.example.hello", "2.0.0")); err != nil {
			t.Fatal(err)
		}
	}
	if c := sim.Counts(); c.Received > 2 {
		t.Fatalf("counts %+v before the offline device connected", c)
	}
	if err := sim.Connect(off[0]); err != nil {
		t.Fatal(err)
	}
	for _, id := range sim.Devices() {
		if _, err := ctl.WaitStatus(ctx, id, "job-a", message.StatusSucceeded); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	sim.Stop()
	if c := sim.Counts(); c.Received != 3 || c.Succeeded != 3 {
		t.Errorf("counts %+v; want 3 received and succeeded", c)
	}
	if err := sim.Connect(off[0]); err == nil && sim.Connected(off[0]) {
		t.Errorf("a device connected after Stop")
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, o := range []Options{{N: 0}, {N: 1, Failing: 1.5}, {N: 2, Failing: 0.6, Silent: 0.6}, {N: 1, Slow: -1}} {
		if o.check() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	roles, offline := draw(Options{N: 100, Failing: 0.1, Silent: 0.2, Offline: 0.3, Seed: 3})
	count := map[Role]int{}
	for _, r := range roles {
		count[r]++
	}
	nOff := 0
	for _, o := range offline {
		if o {
			nOff++
		}
	}
	if count[Failing] != 10 || count[Silent] != 20 || nOff != 30 {
		t.Errorf("drew %v and %d offline; want 10 failing, 20 silent, 30 offline", count, nOff)
	}
	again, _ := draw(Options{N: 100, Failing: 0.1, Silent: 0.2, Offline: 0.3, Seed: 3})
	if !slices.Equal(roles, again) {
		t.Error("the same seed drew other roles")
	}
}

// TestWorkersHostOneFleet runs a fleet split between two worker processes,
// as the benchmarks do at 10,000 devices: every device, whichever process
// hosts it, takes its job and reports SUCCEEDED to one controller.
func TestWorkersHostOneFleet(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	w := startWorkers(t, workerBrief{Kind: "sim", Broker: b.Share(t), N: n, Seed: 1, SignKey: key}, 2)
	if len(w.procs) != 2 {
		t.Fatalf("%d worker processes; want 2", len(w.procs))
	}
	id := b.ControllerIdentity(t)
	var got finals
	ctx, cancel := context.WithTimeout(t.Context(), mqtttest.WaitTimeout)
	defer cancel()
	ctl, err := controller.Connect(ctx, controller.Config{BrokerURL: b.URL, CAFile: id.CAFile, CertFile: id.CertFile,
		KeyFile: id.KeyFile, TopicPrefix: b.Prefix, SignKey: key, OnStatus: got.add})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close(context.Background())
	for i := range n {
		if err := ctl.PublishJob(ctx, Job(simID(i, n), "job-w", "com.example.hello", "3.0.0")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := ctl.WaitStatus(ctx, simID(i, n), "job-w", message.StatusSucceeded); err != nil {
			t.Fatalf("%s: %v", simID(i, n), err)
		}
	}
	counts, _, _ := sumReports(w.stop())
	if counts.Received != n || counts.Succeeded != n {
		t.Errorf("the workers count %+v; want %d received and succeeded", counts, n)
	}
}

func TestPartOfAFleet(t *testing.T) {
	if err := (Options{N: 10, From: 4, To: 11}).check(); err == nil {
		t.Error("a part past the fleet's end accepted")
	}
	o := Options{N: 10, From: 4, To: 7}
	if from, to := o.part(); from != 4 || to != 7 || o.hosted() != 3 {
		t.Errorf("part %d-%d, %d hosted; want 4-7, 3", from, to, o.hosted())
	}
}
