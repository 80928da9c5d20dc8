package comms

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"

	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/events"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// deviceNow is the device's and the controller's clock in these tests:
// jobs are created from t0 on and expire an hour after.
func deviceNow() time.Time { return t0.Add(time.Minute) }

const (
	deviceID    = "pos-12"
	waitTimeout = mqtttest.WaitTimeout
)

// rig is one broker, one store, one engine double and a controller that
// collects every status it is given, for a device under test.
type rig struct {
	t    *testing.T
	b    *mqtttest.Broker
	priv ed25519.PrivateKey
	ring *sign.Keyring
	bus  *events.Bus
	eng  *engineDouble
	st   *store.Store
	col  *collector
	ctl  *controller.Controller
	ctls int // controllers connected
	logs *logSink

	comps   atomic.Pointer[[]message.ComponentStatus]
	created atomic.Int64 // jobs are created one second apart, in the order made
	raw     *mqtttest.Conn
}

func newRig(t *testing.T, opts mqtttest.Options) *rig {
	t.Helper()
	r := &rig{t: t, b: mqtttest.Start(t, opts), bus: events.New(nil), col: newCollector(), logs: newLogSink(t)}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r.priv = priv
	if r.ring, err = sign.NewKeyring(pub); err != nil {
		t.Fatal(err)
	}
	r.eng = newEngineDouble(t, r.bus)
	r.st, err = store.Open(t.Context(), filepath.Join(t.TempDir(), "keystone.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.st.Close() })
	r.setComponents(message.ComponentStatus{Name: "com.example.hello", Version: "1.0.0", State: "RUNNING"})
	r.ctl = r.connectController()
	return r
}

func (r *rig) setComponents(comps ...message.ComponentStatus) { r.comps.Store(&comps) }

// connectController connects a controller, with a client id of its own,
// that hands its statuses to the rig's collector; it returns once it is
// subscribed.
func (r *rig) connectController() *controller.Controller {
	r.t.Helper()
	id := r.b.ControllerIdentity(r.t)
	r.ctls++
	c, err := controller.Connect(waitCtx(r.t), controller.Config{
		BrokerURL: r.b.URL, CAFile: id.CAFile, CertFile: id.CertFile, KeyFile: id.KeyFile,
		ClientID: fmt.Sprintf("controller-%d", r.ctls),
		SignKey:  r.priv, ReconnectBackoff: autopaho.NewConstantBackoff(100 * time.Millisecond),
		OnStatus: r.col.add, Now: deviceNow, Logger: r.logs.logger("controller"),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = c.Close(context.WithoutCancel(r.t.Context())) })
	return c
}

// config is the device's configuration on the rig.
func (r *rig) config() Config {
	id := r.b.Device(r.t, deviceID)
	return Config{
		DeviceID: deviceID, Groups: []string{"canary"}, AgentVersion: "1.2.3",
		BrokerURL: r.b.URL, CAFile: id.CAFile, CertFile: id.CertFile, KeyFile: id.KeyFile,
		Keyring: r.ring, Store: r.st, Deployer: r.eng, Bus: r.bus,
		Components: func() []message.ComponentStatus { return *r.comps.Load() },
		Now:        deviceNow, Logger: r.logs.logger("device"),
	}
}

// newDevice makes a device on the rig; it reconnects quickly.
func (r *rig) newDevice(mod func(*Config)) *Device {
	r.t.Helper()
	cfg := r.config()
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	d.reconnect = reconnectPolicy{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	return d
}

// running is a device whose Run goes on until stop.
type running struct {
	*Device
	cancel context.CancelFunc
	done   chan error
}

func (r *rig) run(d *Device) *running {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.t.Context()))
	rd := &running{Device: d, cancel: cancel, done: make(chan error, 1)}
	go func() { rd.done <- d.Run(ctx) }()
	r.t.Cleanup(func() { rd.stop(r.t) })
	return rd
}

// stop ends Run and checks that it returned nil; a second stop does
// nothing.
func (rd *running) stop(t *testing.T) {
	t.Helper()
	if rd.done == nil {
		return
	}
	rd.cancel()
	select {
	case err := <-rd.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("Run did not return within %s of its context's end", waitTimeout)
	}
	rd.done = nil
}

// awaitConnected waits until the device's connection is up (or down).
func awaitConnected(t *testing.T, d *Device, up bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		conn, _, changed := d.connection()
		if (conn != nil) == up {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the device's connection was not up=%v within %s", up, waitTimeout)
		}
	}
}

// awaitState waits until the controller's latest state of the device
// satisfies ok and returns it.
func (r *rig) awaitState(ok func(message.State) bool) message.State {
	r.t.Helper()
	st, err := r.ctl.WaitState(waitCtx(r.t), deviceID, ok)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// job is a job for the device, created one second after the previous one.
func (r *rig) job(id, kind string) message.Job {
	n := r.created.Add(1)
	j := message.Job{JobID: id, Kind: kind, DeviceID: deviceID,
		CreatedAt: t0.Add(time.Duration(n) * time.Second), ExpiresAt: t0.Add(time.Hour)}
	switch kind {
	case message.KindDeployment:
		j.Deployment = &message.DeploymentJob{Manifest: "format = 1\n"}
	case message.KindAgentUpdate:
		j.AgentUpdate = &message.AgentUpdateJob{Version: "2.0.0"}
	}
	return j
}

func (r *rig) deployment(id, manifest string) message.Job {
	j := r.job(id, message.KindDeployment)
	j.Deployment.Manifest = manifest
	return j
}

func (r *rig) cancelJob(id, target string) message.Job {
	j := r.job(id, message.KindCancel)
	j.Cancel = &message.CancelJob{JobID: target}
	return j
}

// publish publishes job through the controller, as an operator would.
func (r *rig) publish(j message.Job) {
	r.t.Helper()
	if err := r.ctl.PublishJob(waitCtx(r.t), j); err != nil {
		r.t.Fatal(err)
	}
}

// sign signs j with the rig's key.
func (r *rig) sign(j message.Job) []byte {
	r.t.Helper()
	doc, err := j.Sign(r.priv)
	if err != nil {
		r.t.Fatal(err)
	}
	return doc
}

// publishRaw publishes doc, retained, on the device's jobs/notify as the
// controller's identity: for documents the controller refuses to send.
func (r *rig) publishRaw(doc []byte) {
	r.t.Helper()
	if r.raw == nil {
		r.raw = r.b.Dial(r.t, r.b.ControllerIdentity(r.t), mqtttest.DialOptions{ClientID: "raw-controller"})
		r.raw.AwaitUp(r.t)
	}
	r.raw.MustPublish(r.t, message.Topics{Prefix: "keystone", DeviceID: deviceID}.JobNotify(), doc, 1, true)
}

// collector keeps every status the rig's controllers delivered, in the
// order they arrived; across controllers it may hold one seq twice.
type collector struct {
	mu      sync.Mutex
	all     []message.JobStatus
	changed chan struct{}
}

func newCollector() *collector { return &collector{changed: make(chan struct{})} }

func (c *collector) add(st message.JobStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, st)
	close(c.changed)
	c.changed = make(chan struct{})
}

// arrived returns job jobID's statuses in arrival order.
func (c *collector) arrived(jobID string) []message.JobStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []message.JobStatus
	for _, st := range c.all {
		if st.JobID == jobID {
			out = append(out, st)
		}
	}
	return out
}

// unique returns job jobID's statuses once each by seq, in seq order: what
// a controller that drops duplicates by seq sees, whatever order the
// broker delivered them in.
func (c *collector) unique(jobID string) []message.JobStatus {
	seen := map[uint64]bool{}
	var out []message.JobStatus
	for _, st := range c.arrived(jobID) {
		if !seen[st.Seq] {
			seen[st.Seq] = true
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b message.JobStatus) int { return int(a.Seq) - int(b.Seq) })
	return out
}

// wait waits for a status of jobID satisfying ok and returns the first.
func (c *collector) wait(t *testing.T, jobID string, ok func(message.JobStatus) bool, what string) message.JobStatus {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		for _, st := range c.arrived(jobID) {
			if ok(st) {
				return st
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("job %s: no status %s within %s; got %s", jobID, what, waitTimeout, describe(c.arrived(jobID)))
		}
	}
}

// waitStatus waits for job jobID's first status s.
func (c *collector) waitStatus(t *testing.T, jobID, s string) message.JobStatus {
	t.Helper()
	return c.wait(t, jobID, func(st message.JobStatus) bool { return st.Status == s }, s)
}

// describe renders statuses as "seq:STATUS[step]" for failure messages.
func describe(sts []message.JobStatus) string {
	var parts []string
	for _, st := range sts {
		p := fmt.Sprintf("%d:%s", st.Seq, st.Status)
		if st.Step != "" {
			p += "[" + st.Step + "]"
		}
		if st.ErrorCode != "" {
			p += "(" + st.ErrorCode + ")"
		}
		parts = append(parts, p)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// progression renders statuses as "STATUS[step]" in their order, without
// seq: what a job went through.
func progression(sts []message.JobStatus) []string {
	var out []string
	for _, st := range sts {
		p := st.Status
		if st.Step != "" {
			p += "[" + st.Step + "]"
		}
		out = append(out, p)
	}
	return out
}

// succeeded is what a deployment the double runs through reports.
var succeeded = []string{"QUEUED", "IN_PROGRESS", "IN_PROGRESS[fetch:started]", "IN_PROGRESS[fetch:done]",
	"IN_PROGRESS[start:started]", "IN_PROGRESS[start:done]", "IN_PROGRESS[commit:done]", "SUCCEEDED"}

// checkOnceInOrder checks that job jobID's statuses, once each by seq and
// in seq order, went through want exactly: none lost, none enqueued twice.
func checkOnceInOrder(t *testing.T, c *collector, jobID string, want []string) {
	t.Helper()
	got := c.unique(jobID)
	if !slices.Equal(progression(got), want) {
		t.Errorf("job %s: statuses by seq %s; want %v", jobID, describe(got), want)
	}
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logSink sends log lines to the test log while the test runs and keeps
// them for searching; lines after the test's end are kept only.
type logSink struct {
	t       *testing.T
	mu      sync.Mutex
	lines   []string
	over    bool
	changed chan struct{} // closed and replaced at every line
}

func newLogSink(t *testing.T) *logSink {
	s := &logSink{t: t, changed: make(chan struct{})}
	t.Cleanup(func() {
		s.mu.Lock()
		s.over = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) logger(part string) *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug})).With("part", part)
}

func (s *logSink) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	close(s.changed)
	s.changed = make(chan struct{})
	if !s.over {
		s.t.Log(line)
	}
	return len(p), nil
}

// contains reports whether a line holding every one of subs was logged.
func (s *logSink) contains(subs ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		all := true
		for _, sub := range subs {
			all = all && strings.Contains(l, sub)
		}
		if all {
			return true
		}
	}
	return false
}

// wait waits until a line holding every one of subs is logged.
func (s *logSink) wait(t *testing.T, subs ...string) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if s.contains(subs...) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("nothing logged holding %q within %s", subs, waitTimeout)
		}
	}
}
