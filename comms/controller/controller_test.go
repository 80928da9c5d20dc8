package controller_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"

	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/sign"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fleet is a controller under test with what it delivered.
type fleet struct {
	*controller.Controller
	clock *fakeclock.Clock

	mu       sync.Mutex
	statuses []message.JobStatus
}

func (f *fleet) delivered() []message.JobStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.statuses)
}

// config is a controller configuration for b: its controller identity, a
// fresh sign key, reconnects 100 ms apart, logs into the test's log.
func config(t *testing.T, b *mqtttest.Broker) (controller.Config, *sign.Keyring) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := sign.NewKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	id := b.ControllerIdentity(t)
	return controller.Config{
		BrokerURL: b.URL, CAFile: id.CAFile, CertFile: id.CertFile, KeyFile: id.KeyFile,
		SignKey:          priv,
		ReconnectBackoff: autopaho.NewConstantBackoff(100 * time.Millisecond),
		Logger:           slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}, ring
}

func connect(t *testing.T, cfg controller.Config) *fleet {
	t.Helper()
	f := &fleet{clock: fakeclock.New(t0.Add(time.Minute))}
	cfg.Now = f.clock.Now
	cfg.OnStatus = func(st message.JobStatus) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.statuses = append(f.statuses, st)
	}
	var err error
	if f.Controller, err = controller.Connect(wait(t), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(context.WithoutCancel(t.Context())) })
	return f
}

// wait bounds a wait so that a broken test ends rather than hangs.
func wait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), mqtttest.WaitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func deployment(jobID, deviceID string) message.Job {
	return message.Job{JobID: jobID, Kind: message.KindDeployment, DeviceID: deviceID,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), Deployment: &message.DeploymentJob{Manifest: "format = 1\n"}}
}

// sendStatus publishes a status as a device's agent would.
func sendStatus(t *testing.T, dev *mqtttest.Conn, st message.JobStatus) {
	t.Helper()
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	topic := message.Topics{Prefix: "keystone", DeviceID: st.DeviceID}.JobStatus(st.JobID)
	dev.MustPublish(t, topic, body, 1, false)
}

func status(dev, job string, seq uint64, s string) message.JobStatus {
	return message.JobStatus{DeviceID: dev, JobID: job, Seq: seq, Status: s, AgentVersion: "1.0.0", TS: t0}
}

func seqsOf(sts []message.JobStatus) []uint64 {
	var out []uint64
	for _, st := range sts {
		out = append(out, st.Seq)
	}
	return out
}

func TestPublishJobReachesTheDeviceRetainedAndSigned(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		cfg, ring := config(t, b)
		f := connect(t, cfg)
		if err := f.PublishJob(wait(t), deployment("job-1", "pos-12")); err != nil {
			t.Fatal(err)
		}
		// The device connects after the job was published: the retained
		// copy is waiting.
		dev := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
		dev.AwaitUp(t)
		dev.MustSubscribe(t, "keystone/pos-12/jobs/notify", 1)
		m := dev.Next(t)
		if !m.Retain || m.QoS != 1 {
			t.Errorf("job delivered with retain %v, QoS %d; want retained at QoS 1", m.Retain, m.QoS)
		}
		job, err := message.ParseJob(m.Payload, ring, "pos-12", f.clock.Now())
		if err != nil || job.JobID != "job-1" || job.Deployment.Manifest != "format = 1\n" {
			t.Fatalf("the device read %+v, %v", job, err)
		}

		if err := f.ClearJob(wait(t), "pos-12"); err != nil {
			t.Fatal(err)
		}
		// A device subscribing now finds no job: the first message it gets
		// is one published after it subscribed.
		late := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{ClientID: "pos-12-late"})
		late.AwaitUp(t)
		late.MustSubscribe(t, "keystone/pos-12/#", 1)
		late.MustPublish(t, "keystone/pos-12/events", []byte("after"), 1, false)
		if m := late.Next(t); m.Topic != "keystone/pos-12/events" {
			t.Fatalf("after ClearJob a new subscriber got %s %q", m.Topic, m.Payload)
		}
	})
}

func TestPublishJobRefusesWhatADeviceWouldRefuse(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	cfg, _ := config(t, b)
	f := connect(t, cfg)
	expired := deployment("job-old", "pos-12")
	expired.ExpiresAt = t0.Add(-time.Minute)
	var re *message.RejectError
	if err := f.PublishJob(wait(t), expired); !errors.As(err, &re) || re.Code != message.CodeExpired {
		t.Errorf("an expired job: %v, want %s", err, message.CodeExpired)
	}
	noManifest := deployment("job-2", "pos-12")
	noManifest.Deployment = nil
	if err := f.PublishJob(wait(t), noManifest); !errors.As(err, &re) || re.Code != message.CodeMalformed {
		t.Errorf("a deployment without a manifest: %v, want %s", err, message.CodeMalformed)
	}
	if err := f.PublishJob(wait(t), deployment("job-3", "pos-+")); err == nil || !strings.Contains(err.Error(), "may not hold") {
		t.Errorf("a wildcard device id: %v", err)
	}

	watchOnly := cfg
	watchOnly.SignKey = nil
	w := connect(t, watchOnly)
	if err := w.PublishJob(wait(t), deployment("job-4", "pos-12")); !errors.Is(err, controller.ErrNoSignKey) {
		t.Errorf("without a sign key: %v", err)
	}
}

func TestConnectRefusesABadConfig(t *testing.T) {
	mqtttest.Each(t, testConnectRefusesABadConfig)
}

func testConnectRefusesABadConfig(t *testing.T, kind string) {
	b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
	good, _ := config(t, b)
	for _, tc := range []struct {
		name string
		mod  func(*controller.Config)
		want string
	}{
		{"plain mqtt", func(c *controller.Config) { c.BrokerURL = strings.Replace(c.BrokerURL, "mqtts", "mqtt", 1) }, "only with TLS"},
		{"no CA", func(c *controller.Config) { c.CAFile = "" }, "all required"},
		{"CA is not PEM", func(c *controller.Config) { c.CAFile = c.KeyFile }, "no PEM certificate"},
		{"wildcard prefix", func(c *controller.Config) { c.TopicPrefix = "a/#" }, "may not hold"},
	} {
		cfg := good
		tc.mod(&cfg)
		if _, err := controller.Connect(wait(t), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}

	// A device identity is not allowed on every device's topics: the
	// broker refuses (mochi) or grants and filters (mosquitto); mochi's
	// refusal must come back from Connect.
	if b.Kind == mqtttest.KindMochi {
		dev := b.Device(t, "pos-12")
		cfg := good
		cfg.CertFile, cfg.KeyFile = dev.CertFile, dev.KeyFile
		if _, err := controller.Connect(wait(t), cfg); err == nil || !strings.Contains(err.Error(), "refused the subscription") {
			t.Errorf("a device identity as controller: %v", err)
		}
	}

	// An untrusted identity never connects; Connect ends with its context
	// and says why the last attempt failed.
	foreign := b.Foreign(t, "keystone-controller")
	cfg := good
	cfg.CertFile, cfg.KeyFile = foreign.CertFile, foreign.KeyFile
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := controller.Connect(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last attempt") {
		t.Errorf("an untrusted certificate: %v", err)
	}
	t.Logf("an untrusted certificate: %v", err)
}

func TestStatusesArriveOnceInOrderThroughASharedSubscription(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		cfg, _ := config(t, b)
		cfg.SharedGroup = "keystone-fleet"
		f := connect(t, cfg)
		dev := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
		dev.AwaitUp(t)

		sendStatus(t, dev, status("pos-12", "job-1", 1, message.StatusQueued))
		sendStatus(t, dev, status("pos-12", "job-1", 2, message.StatusInProgress))
		sendStatus(t, dev, status("pos-12", "job-1", 2, message.StatusInProgress)) // resent after a lost PUBACK
		sendStatus(t, dev, status("pos-12", "job-1", 1, message.StatusQueued))
		dev.MustPublish(t, "keystone/pos-12/jobs/job-1/status", []byte("{not json"), 1, false)
		forged := status("pos-13", "job-1", 3, message.StatusSucceeded) // pos-12 speaking for pos-13
		body, _ := json.Marshal(forged)
		dev.MustPublish(t, "keystone/pos-12/jobs/job-1/status", body, 1, false)
		sendStatus(t, dev, status("pos-12", "job-1", 3, "DONE"))
		sendStatus(t, dev, status("pos-12", "job-1", 4, message.StatusSucceeded))

		st, err := f.WaitStatus(wait(t), "pos-12", "job-1", message.StatusSucceeded)
		if err != nil || st.Seq != 4 {
			t.Fatalf("WaitStatus: %+v, %v", st, err)
		}
		if got := seqsOf(f.delivered()); !slices.Equal(got, []uint64{1, 2, 4}) {
			t.Errorf("delivered seqs %v, want [1 2 4]", got)
		}
		if s := f.Stats(); s.Statuses != 3 || s.Duplicates != 2 || s.Malformed != 3 {
			t.Errorf("stats %+v, want 3 statuses, 2 duplicates, 3 malformed", s)
		}
	})
}

func TestStatesKeepTheLatestPerDevice(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		state := func(dev string, seq uint64, online bool) []byte {
			body, _ := json.Marshal(message.State{DeviceID: dev, Seq: seq, Online: online, AgentVersion: "1.0.0", Healthy: online, TS: t0})
			return body
		}
		// pos-12's state is retained before the controller starts.
		p12 := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
		p12.AwaitUp(t)
		p12.MustPublish(t, "keystone/pos-12/state", state("pos-12", 7, true), 1, true)

		cfg, _ := config(t, b)
		f := connect(t, cfg)
		if st, err := f.WaitState(wait(t), "pos-12", func(s message.State) bool { return s.Seq == 7 }); err != nil || !st.Online {
			t.Fatalf("retained state: %+v, %v", st, err)
		}
		p13 := b.Dial(t, b.Device(t, "pos-13"), mqtttest.DialOptions{})
		p13.AwaitUp(t)
		p13.MustPublish(t, "keystone/pos-13/state", state("pos-13", 3, true), 1, true)
		p12.MustPublish(t, "keystone/pos-12/state", state("pos-12", 6, true), 1, true)  // a late resend: dropped
		p12.MustPublish(t, "keystone/pos-12/state", state("pos-12", 5, false), 1, true) // the will: applies
		if _, err := f.WaitState(wait(t), "pos-12", func(s message.State) bool { return !s.Online }); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WaitState(wait(t), "pos-13", func(s message.State) bool { return s.Seq == 3 }); err != nil {
			t.Fatal(err)
		}
		all := f.States()
		if len(all) != 2 || all["pos-12"].Seq != 5 || all["pos-13"].Seq != 3 {
			t.Errorf("states %+v", all)
		}
		if s := f.Stats(); s.States != 3 {
			t.Errorf("stats %+v, want 3 states (the resend of seq 6 dropped)", s)
		}
		// Clearing the retained state forgets the device. (The status after
		// it comes from the same client, so it arrives after the clearing.)
		p13.MustPublish(t, "keystone/pos-13/state", nil, 1, true)
		sendStatus(t, p13, status("pos-13", "job-1", 4, message.StatusQueued))
		if _, err := f.WaitStatus(wait(t), "pos-13", "job-1", message.StatusQueued); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.State("pos-13"); ok {
			t.Error("pos-13's state survived its clearing")
		}
	})
}

func TestReconnectsAndSubscribesAgainAfterABrokerRestart(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		// Without persistence the restarted broker has forgotten the
		// controller's session and subscriptions: statuses after the
		// restart arrive only if the controller subscribed again.
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		cfg, _ := config(t, b)
		f := connect(t, cfg)
		dev := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
		dev.AwaitUp(t)
		sendStatus(t, dev, status("pos-12", "job-1", 1, message.StatusQueued))
		if _, err := f.WaitStatus(wait(t), "pos-12", "job-1", message.StatusQueued); err != nil {
			t.Fatal(err)
		}

		b.Restart(t)
		// The job published while the broker comes back waits for the
		// connection.
		if err := f.PublishJob(wait(t), deployment("job-2", "pos-12")); err != nil {
			t.Fatal(err)
		}
		dev.AwaitUp(t)
		dev.MustSubscribe(t, "keystone/pos-12/jobs/notify", 1)
		if m := dev.Next(t); !strings.Contains(string(m.Payload), `"job_id":"job-2"`) {
			t.Fatalf("after the restart the device got %s %q", m.Topic, m.Payload)
		}
		// The device resends seq 1 (its outbox lost the PUBACK) and goes on.
		sendStatus(t, dev, status("pos-12", "job-1", 1, message.StatusQueued))
		sendStatus(t, dev, status("pos-12", "job-2", 2, message.StatusSucceeded))
		if _, err := f.WaitStatus(wait(t), "pos-12", "job-2", message.StatusSucceeded); err != nil {
			t.Fatal(err)
		}
		if got := seqsOf(f.delivered()); !slices.Equal(got, []uint64{1, 2}) {
			t.Errorf("delivered seqs %v, want [1 2]", got)
		}
	})
}

func TestStatusesSentWhileTheControllerIsAwayWaitInItsSession(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind, Persistence: true})
		cfg, _ := config(t, b)
		first := connect(t, cfg)
		if err := first.Close(wait(t)); err != nil {
			t.Fatal(err)
		}
		dev := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
		dev.AwaitUp(t)
		for seq, s := range []string{message.StatusQueued, message.StatusInProgress, message.StatusSucceeded} {
			sendStatus(t, dev, status("pos-12", "job-1", uint64(seq+1), s))
		}
		b.Restart(t) // the session and its queue survive a restart with persistence

		again := connect(t, cfg)
		if _, err := again.WaitStatus(wait(t), "pos-12", "job-1", message.StatusSucceeded); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{message.StatusQueued, message.StatusInProgress} {
			if _, err := again.WaitStatus(wait(t), "pos-12", "job-1", s); err != nil {
				t.Fatal(err)
			}
		}
		got := seqsOf(again.delivered())
		if kind == mqtttest.KindMochi {
			// mochi re-sends a session's queue sorted by the second each
			// message was made in: order within a second is not kept.
			slices.Sort(got)
		}
		if !slices.Equal(got, []uint64{1, 2, 3}) {
			t.Errorf("delivered seqs %v, want [1 2 3]", got)
		}
	})
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// With Record, a status is acknowledged to the broker only once a Record
// call that had it returned nil: one never recorded comes again to the
// next connection of the same session, one recorded does not.
func TestRecordedStatusesAreAcknowledgedOnlyOnceRecorded(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	cfg, _ := config(t, b)
	cfg.ClientID = "recorder"
	dev := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
	dev.AwaitUp(t)

	// recorder connects with record as Config.Record and returns the
	// statuses it was given, as they come.
	recorder := func(record func([]controller.Arrival) error) (*controller.Controller, <-chan message.JobStatus) {
		got := make(chan message.JobStatus, 16)
		c := cfg
		c.Record = func(_ context.Context, as []controller.Arrival) error {
			err := record(as)
			for _, a := range as {
				if a.Status != nil {
					got <- *a.Status
				}
			}
			return err
		}
		ctl, err := controller.Connect(wait(t), c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ctl.Close(context.WithoutCancel(t.Context())) })
		return ctl, got
	}
	next := func(ch <-chan message.JobStatus) message.JobStatus {
		t.Helper()
		select {
		case st := <-ch:
			return st
		case <-wait(t).Done():
			t.Fatal("no status recorded")
		}
		return message.JobStatus{}
	}

	failing, tried := recorder(func([]controller.Arrival) error { return errors.New("disk full") })
	sendStatus(t, dev, status("pos-12", "job-1", 1, message.StatusQueued))
	if st := next(tried); st.Seq != 1 {
		t.Fatalf("recorded seq %d, want 1", st.Seq)
	}
	if err := failing.Close(wait(t)); err != nil {
		t.Fatal(err)
	}

	working, recorded := recorder(func([]controller.Arrival) error { return nil })
	if st := next(recorded); st.Seq != 1 {
		t.Fatalf("after a failed record, the next connection got seq %d first, want 1 again", st.Seq)
	}
	if _, err := working.WaitStatus(wait(t), "pos-12", "job-1", message.StatusQueued); err != nil {
		t.Fatal(err)
	}
	if err := working.Close(wait(t)); err != nil {
		t.Fatal(err)
	}

	// Acknowledgements leave in batches, a few milliseconds after the
	// record: one that had not left at Close brings the status again, a
	// duplicate, and the next connection acknowledges it in turn.
	sendStatus(t, dev, status("pos-12", "job-1", 2, message.StatusSucceeded))
	for {
		ctl, got := recorder(func([]controller.Arrival) error { return nil })
		st := next(got)
		if st.Seq == 2 {
			break
		}
		if st.Seq != 1 {
			t.Fatalf("got seq %d, want 1 again or 2", st.Seq)
		}
		if _, err := ctl.WaitStatus(wait(t), "pos-12", "job-1", message.StatusSucceeded); err != nil {
			t.Fatal(err)
		}
		if err := ctl.Close(wait(t)); err != nil {
			t.Fatal(err)
		}
	}
}
