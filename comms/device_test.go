package comms

import (
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// A deployment job goes QUEUED, IN_PROGRESS through its steps, SUCCEEDED,
// each status with a higher seq than the one before; the final status and
// the retained state list the components; the same job sent again is
// answered with its recorded final status and not run again.
func TestDeploymentJobReportsEveryStepInOrder(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		r := newRig(t, mqtttest.Options{Kind: kind})
		r.run(r.newDevice(nil))
		st := r.awaitState(func(s message.State) bool { return s.Online })
		if st.AgentVersion != "1.2.3" || !slices.Equal(st.Groups, []string{"canary"}) || !st.Healthy ||
			len(st.Components) != 1 || st.Components[0].Name != "com.example.hello" || st.Seq == 0 {
			t.Errorf("state on connecting: %+v", st)
		}

		r.publish(r.deployment("job-1", "format = 1\n"))
		final := r.col.waitStatus(t, "job-1", message.StatusSucceeded)
		got := r.col.arrived("job-1")
		if !slices.Equal(progression(got), succeeded) {
			t.Errorf("statuses %s; want %v", describe(got), succeeded)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq {
				t.Errorf("seq does not increase: %s", describe(got))
			}
		}
		if final.AgentVersion != "1.2.3" || final.DeviceID != deviceID || len(final.Components) != 1 ||
			final.Components[0] != (message.ComponentStatus{Name: "com.example.hello", Version: "1.0.0", State: "RUNNING"}) {
			t.Errorf("final status: %+v", final)
		}
		if fetch := got[3]; fetch.Detail != "1 artifact verified" {
			t.Errorf("the fetch step's detail: %q", fetch.Detail)
		}
		st = r.awaitState(func(s message.State) bool { return s.LastJob != nil })
		if *st.LastJob != (message.LastJob{JobID: "job-1", Status: message.StatusSucceeded}) || !st.Online || st.Seq <= final.Seq {
			t.Errorf("state after the job: %+v", st)
		}

		// The controller sends the same job again: the recorded answer.
		r.publish(r.deployment("job-1", "format = 1\n"))
		again := r.col.wait(t, "job-1", func(s message.JobStatus) bool {
			return s.Status == message.StatusSucceeded && s.Seq > final.Seq
		}, "SUCCEEDED again")
		if again.TS != final.TS || again.Step != "" {
			t.Errorf("the status sent again: %+v; want the recorded %+v", again, final)
		}
		if n := r.eng.submitted("job-1"); n != 1 {
			t.Errorf("job-1 submitted %d times", n)
		}
	})
}

// Jobs the device must refuse are REJECTED with the reason's code, and
// every other kind of job ends as it should: a refused manifest, a failed
// deployment, cancels, and a newer job superseding a queued one.
func TestJobOutcomes(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		r := newRig(t, mqtttest.Options{Kind: kind})
		r.run(r.newDevice(nil))
		r.awaitState(func(s message.State) bool { return s.Online })

		rejected := func(jobID, code, why string) {
			t.Helper()
			st := r.col.waitStatus(t, jobID, message.StatusRejected)
			if st.ErrorCode != code || !strings.Contains(st.Detail, why) {
				t.Errorf("job %s: REJECTED %s %q; want %s saying %q", jobID, st.ErrorCode, st.Detail, code, why)
			}
		}
		failed := func(jobID, code, why string) message.JobStatus {
			t.Helper()
			st := r.col.waitStatus(t, jobID, message.StatusFailed)
			if st.ErrorCode != code || !strings.Contains(st.Detail, why) {
				t.Errorf("job %s: FAILED %s %q; want %s saying %q", jobID, st.ErrorCode, st.Detail, code, why)
			}
			return st
		}

		_, stranger, _ := ed25519.GenerateKey(rand.Reader)
		byStranger, err := r.deployment("bad-sig", "ok").Sign(stranger)
		if err != nil {
			t.Fatal(err)
		}
		r.publishRaw(byStranger)
		rejected("bad-sig", message.CodeSignatureInvalid, "does not trust")

		tampered := strings.Replace(string(r.sign(r.deployment("tampered", "ok"))), `"ok"`, `"ok, and more"`, 1)
		r.publishRaw([]byte(tampered))
		rejected("tampered", message.CodeSignatureInvalid, "changed after it was signed")

		old := r.deployment("expired", "ok")
		old.CreatedAt, old.ExpiresAt = t0.Add(-2*time.Hour), t0.Add(-time.Hour)
		r.publishRaw(r.sign(old))
		rejected("expired", message.CodeExpired, "expired at")

		other := r.deployment("elsewhere", "ok")
		other.DeviceID = "pos-13"
		r.publishRaw(r.sign(other))
		rejected("elsewhere", message.CodeWrongDevice, `for device "pos-13"`)

		r.publish(r.job("update", message.KindAgentUpdate))
		rejected("update", message.CodeUnsupported, "does not update itself")

		r.publish(r.deployment("refused", "invalid"))
		failed("refused", "VALIDATION_FAILED", `"1.x" is not a version`)

		r.publish(r.deployment("broken", "fail"))
		st := failed("broken", "COMPONENT_FAILED", "stderr tail: boom")
		if !st.RolledBack {
			t.Errorf("a failed deployment that rolled back: %+v", st)
		}

		// A job made before the newest accepted one is stale.
		replay := r.deployment("replayed", "ok")
		replay.CreatedAt = t0
		r.publish(replay)
		rejected("replayed", message.CodeStale, "before the newest job")

		// Cancel a running deployment, then the same again, then one that
		// does not exist.
		r.publish(r.deployment("held", "hold"))
		r.eng.awaitHeld(t, "held")
		r.publish(r.cancelJob("stop-held", "held"))
		r.col.waitStatus(t, "stop-held", message.StatusSucceeded)
		if st := r.col.waitStatus(t, "held", message.StatusCanceled); !st.RolledBack || st.ErrorCode != "CANCELED" {
			t.Errorf("the canceled job: %+v", st)
		}
		r.publish(r.cancelJob("stop-held-again", "held"))
		if st := r.col.waitStatus(t, "stop-held-again", message.StatusSucceeded); !strings.Contains(st.Detail, "already canceled") {
			t.Errorf("canceling a canceled job: %+v", st)
		}
		r.publish(r.cancelJob("stop-nothing", "no-such-job"))
		failed("stop-nothing", CodeNotFound, "no deployment no-such-job")
		r.publish(r.cancelJob("stop-finished", "broken"))
		failed("stop-finished", CodeConflict, "already FAILED")

		// A newer job supersedes one still queued behind a running one.
		r.publish(r.deployment("first", "hold"))
		r.eng.awaitHeld(t, "first")
		r.publish(r.deployment("second", "ok"))
		r.col.waitStatus(t, "second", message.StatusQueued)
		r.publish(r.deployment("third", "ok"))
		if st := r.col.waitStatus(t, "second", message.StatusCanceled); !strings.Contains(st.Detail, "superseded by job third") {
			t.Errorf("the superseded job: %+v", st)
		}
		r.eng.release("first")
		r.col.waitStatus(t, "first", message.StatusSucceeded)
		r.col.waitStatus(t, "third", message.StatusSucceeded)
		if slices.ContainsFunc(r.col.arrived("second"), func(s message.JobStatus) bool { return s.Status == message.StatusInProgress }) {
			t.Errorf("the superseded job ran: %s", describe(r.col.arrived("second")))
		}
		for _, id := range []string{"bad-sig", "expired", "update", "replayed"} {
			if n := r.eng.submitted(id); n != 0 {
				t.Errorf("rejected job %s submitted %d times", id, n)
			}
		}
	})
}

// The broker restarts in the middle of a job, first keeping its sessions,
// then having lost everything: every status of each job still reaches the
// controller exactly once (after dropping duplicates by seq) and in order.
func TestStatusesSurviveBrokerRestarts(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		r := newRig(t, mqtttest.Options{Kind: kind, Persistence: true})
		d := r.run(r.newDevice(nil))
		r.awaitState(func(s message.State) bool { return s.Online })

		r.publish(r.deployment("job-1", "hold"))
		r.eng.awaitHeld(t, "job-1")
		r.col.wait(t, "job-1", func(s message.JobStatus) bool { return s.Step == "start:started" }, "start:started")
		r.b.Restart(t)
		r.eng.release("job-1") // its last statuses go out while the device reconnects, or after
		r.col.waitStatus(t, "job-1", message.StatusSucceeded)
		checkOnceInOrder(t, r.col, "job-1", succeeded)

		r.publish(r.deployment("job-2", "hold"))
		r.eng.awaitHeld(t, "job-2")
		r.col.wait(t, "job-2", func(s message.JobStatus) bool { return s.Step == "start:started" }, "start:started")
		// The device comes back only once a controller has subscribed
		// again: nothing holds statuses for a subscription that is gone.
		d.holdConnect.Store(true)
		r.b.RestartEmpty(t)
		r.eng.release("job-2")
		r.connectController()
		d.holdConnect.Store(false)
		r.col.waitStatus(t, "job-2", message.StatusSucceeded)
		checkOnceInOrder(t, r.col, "job-2", succeeded)
		if d.sessionPresent.Load() {
			t.Error("the device found its session on a broker that lost everything")
		}
		if n := r.eng.submitted("job-1") + r.eng.submitted("job-2"); n != 2 {
			t.Errorf("%d submits for two jobs", n)
		}
	})
}

// A device stopped after it recorded a job but before anything was
// published, or in the middle of a deployment: the next device on the
// same store finishes the job, submitting nothing twice, and every status
// arrives.
func TestJobsResumeAfterARestart(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		r := newRig(t, mqtttest.Options{Kind: kind})

		// Recorded by the receive path of a device that never got further.
		first := r.newDevice(nil)
		if err := first.intake(t.Context(), r.sign(r.deployment("job-1", "ok")), false); err != nil {
			t.Fatal(err)
		}
		if n, err := r.st.OutboxLen(t.Context()); err != nil || n != 1 {
			t.Fatalf("outbox after the intake: %d, %v; want the QUEUED status", n, err)
		}
		second := r.run(r.newDevice(nil))
		r.col.waitStatus(t, "job-1", message.StatusSucceeded)
		checkOnceInOrder(t, r.col, "job-1", succeeded)

		// Stopped while the deployment runs.
		r.publish(r.deployment("job-2", "hold"))
		r.eng.awaitHeld(t, "job-2")
		r.col.wait(t, "job-2", func(s message.JobStatus) bool { return s.Step == "start:started" }, "start:started")
		second.stop(t)
		r.awaitState(func(s message.State) bool { return !s.Online })
		r.run(r.newDevice(nil))
		r.awaitState(func(s message.State) bool { return s.Online })
		r.eng.release("job-2")
		r.col.waitStatus(t, "job-2", message.StatusSucceeded)
		checkOnceInOrder(t, r.col, "job-2", succeeded)
		for _, id := range []string{"job-1", "job-2"} {
			if n := r.eng.submitted(id); n != 1 {
				t.Errorf("%s submitted %d times", id, n)
			}
		}
	})
}

// A device offline for longer than its session lasts finds its latest job
// on return: the job is retained.
func TestRetainedJobReachesADeviceWhoseSessionExpired(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		r := newRig(t, mqtttest.Options{Kind: kind})
		short := func(c *Config) { c.SessionExpiry = time.Second }
		first := r.run(r.newDevice(short))
		r.awaitState(func(s message.State) bool { return s.Online })
		first.stop(t)
		r.publish(r.deployment("job-1", "ok")) // queued in the session, and retained
		// The broker's own clock ends the session: a second, counted in
		// whole seconds and checked once a second (mochi), so up to three.
		<-time.After(3500 * time.Millisecond)
		second := r.run(r.newDevice(short))
		r.col.waitStatus(t, "job-1", message.StatusSucceeded)
		checkOnceInOrder(t, r.col, "job-1", succeeded)
		if second.sessionPresent.Load() {
			t.Error("the session was still there: this test did not test an expired one")
		}
	})
}

// Component transitions go out on …/events and change the retained
// state; a connection lost without a DISCONNECT makes the broker publish
// the will, offline, until the device is back.
func TestEventsStateAndWill(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		r := newRig(t, mqtttest.Options{Kind: kind})
		watcher := r.b.Dial(t, r.b.ControllerIdentity(t), mqtttest.DialOptions{ClientID: "watcher"})
		watcher.AwaitUp(t)
		watcher.MustSubscribe(t, "keystone/"+deviceID+"/events", 0)
		d := r.run(r.newDevice(nil))
		r.awaitState(func(s message.State) bool { return s.Online && s.Healthy })

		r.setComponents(message.ComponentStatus{Name: "com.example.hello", Version: "1.0.0", State: "RUNNING"},
			message.ComponentStatus{Name: "com.example.db", Version: "2.0.0", State: "STARTING"})
		r.bus.Publish(events.Event{Kind: events.KindTransition, Component: "com.example.db", From: "INSTALLED", To: "STARTING",
			Detail: map[string]string{"version": "2.0.0"}})
		m := watcher.Next(t)
		if m.QoS != 0 || m.Retain || !strings.Contains(string(m.Payload), `"component":"com.example.db"`) ||
			!strings.Contains(string(m.Payload), `"to":"STARTING"`) {
			t.Errorf("event: %s qos %d retain %v", m.Payload, m.QoS, m.Retain)
		}
		st := r.awaitState(func(s message.State) bool { return len(s.Components) == 2 })
		if st.Healthy || st.Components[0].Name != "com.example.db" {
			t.Errorf("state with a starting component: %+v", st)
		}

		d.mu.Lock()
		cm := d.cm
		d.mu.Unlock()
		cm.TerminateConnectionForTest()
		will := r.awaitState(func(s message.State) bool { return !s.Online })
		// The will was made when the connection was: one component then.
		if will.DeviceID != deviceID || will.AgentVersion != "1.2.3" || len(will.Components) != 1 || will.Healthy {
			t.Errorf("will: %+v", will)
		}
		r.awaitState(func(s message.State) bool { return s.Online })
	})
}

// With PublishMetrics, a plugin run's values go out on …/metrics at QoS 0;
// without it, nothing does.
func TestPluginMetricsArePublishedWhenAskedFor(t *testing.T) {
	r := newRig(t, mqtttest.Options{})
	watcher := r.b.Dial(t, r.b.ControllerIdentity(t), mqtttest.DialOptions{ClientID: "watcher"})
	watcher.AwaitUp(t)
	watcher.MustSubscribe(t, "keystone/"+deviceID+"/metrics", 0)
	d := r.run(r.newDevice(func(c *Config) { c.PublishMetrics = true }))
	awaitConnected(t, d.Device, true)
	d.PublishMetrics("com.example.pos", []map[string]any{{"name": "pos_queue_len", "value": 3}})
	m := watcher.Next(t)
	if m.QoS != 0 || m.Retain || !strings.Contains(string(m.Payload), `"component":"com.example.pos"`) ||
		!strings.Contains(string(m.Payload), `"pos_queue_len"`) {
		t.Errorf("metrics message: %s qos %d retain %v", m.Payload, m.QoS, m.Retain)
	}
	off := r.newDevice(nil)
	off.PublishMetrics("com.example.pos", []int{1})
	if len(off.metrics) != 0 {
		t.Error("metrics queued although PublishMetrics is off")
	}
}
