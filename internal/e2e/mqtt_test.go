package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// fleet is one device on a real MQTT broker (mTLS, per-device ACL), with a
// TUF component repository served over HTTP and a controller that signs
// jobs with a key the device trusts and records every status it gets.
type fleet struct {
	t       testing.TB
	broker  *mqtttest.Broker
	repoDir string
	repoURL string
	dev     *device
	ctl     *controller.Controller

	mu       sync.Mutex
	statuses []message.JobStatus

	published map[string]bool // name@version already in the repository
}

func newFleet(t testing.TB, brokerOpts mqtttest.Options) *fleet {
	t.Helper()
	return newFleetWith(t, brokerOpts, "")
}

// newFleetWith is newFleet with more [mqtt] keys for the device.
func newFleetWith(t testing.TB, brokerOpts mqtttest.Options, mqttExtra string) *fleet {
	t.Helper()
	f := &fleet{t: t, broker: mqtttest.Start(t, brokerOpts), repoDir: t.TempDir()}
	if err := tufrepo.Init(f.repoDir, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(tufrepo.ServedDir(f.repoDir))))
	t.Cleanup(srv.Close)
	f.repoURL = srv.URL
	f.dev = newDevice(t, deviceOptions{
		trust: func(d *device) string {
			return fmt.Sprintf("tuf_root = %q\nrepository = %q", tufrepo.RootFile(f.repoDir), f.repoURL)
		},
		extra: func(d *device) string {
			id := f.broker.Device(t, "e2e-"+d.tag)
			return fmt.Sprintf("[artifacts]\nallow_http = true\n\n[mqtt]\nbroker = %q\nca_file = %q\ncert_file = %q\nkey_file = %q\n%s",
				f.broker.URL, id.CAFile, id.CertFile, id.KeyFile, mqttExtra)
		},
	})
	return f
}

// deviceID is the device's id (and its certificate's name).
func (f *fleet) deviceID() string { return "e2e-" + f.dev.tag }

// connect starts the controller, signing with the device's trusted key.
func (f *fleet) connect() {
	f.t.Helper()
	priv, err := sign.LoadPrivateKey(f.dev.key)
	if err != nil {
		f.t.Fatal(err)
	}
	id := f.broker.ControllerIdentity(f.t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f.ctl, err = controller.Connect(ctx, controller.Config{
		BrokerURL: f.broker.URL, CAFile: id.CAFile, CertFile: id.CertFile, KeyFile: id.KeyFile,
		SignKey: priv,
		OnStatus: func(s message.JobStatus) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.statuses = append(f.statuses, s)
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = f.ctl.Close(context.Background()) })
}

// publish adds comps to the repository (recipe and svc artifact) and
// returns a manifest naming them without recipes: a job's components come
// from the repository, never from the message.
func (f *fleet) publish(comps ...comp) string {
	f.t.Helper()
	var m strings.Builder
	m.WriteString("format = 1\n[deployment]\nhealth_timeout = \"20s\"\n")
	src := f.t.TempDir()
	if f.published == nil {
		f.published = map[string]bool{}
	}
	for _, c := range comps {
		name := f.dev.name(c.short)
		fmt.Fprintf(&m, "\n[[components]]\nname = %q\nversion = %q\n", name, c.version)
		if c.greeting != "" {
			fmt.Fprintf(&m, "[components.config]\ngreeting = %q\n", c.greeting)
		}
		if f.published[name+"@"+c.version] { // versions are immutable
			continue
		}
		f.published[name+"@"+c.version] = true
		text := regexp.MustCompile(`uri *= "file://[^"]*"`).ReplaceAllString(f.dev.recipe(c),
			fmt.Sprintf("uri = %q", "repo:"+tufrepo.ArtifactTarget(name, c.version, "svc")))
		recipe := filepath.Join(src, c.short+"-"+c.version+".recipe.toml")
		if err := os.WriteFile(recipe, []byte(text), 0o644); err != nil {
			f.t.Fatal(err)
		}
		if _, err := tufrepo.Add(f.repoDir, recipe, []string{filepath.Join(filepath.Dir(built.svc), "svc")}, tufrepo.Options{}); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := tufrepo.Publish(f.repoDir, tufrepo.Options{}); err != nil {
		f.t.Fatal(err)
	}
	return m.String()
}

// job is a deployment job for the device, created now.
func (f *fleet) job(id, manifest string) message.Job {
	now := time.Now()
	return message.Job{JobID: id, Kind: message.KindDeployment, DeviceID: f.deviceID(),
		CreatedAt: now, ExpiresAt: now.Add(time.Hour), Deployment: &message.DeploymentJob{Manifest: manifest}}
}

func (f *fleet) send(j message.Job) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.ctl.PublishJob(ctx, j); err != nil {
		f.t.Fatal(err)
	}
}

// sendRaw publishes a job document as is, retained, on the device's
// notify topic: how a job the controller would never send (expired, badly
// signed, for another device) reaches a device.
func (f *fleet) sendRaw(doc []byte) {
	f.t.Helper()
	c := f.broker.Dial(f.t, f.broker.ControllerIdentity(f.t), mqtttest.DialOptions{ClientID: "keystone-controller-raw"}) // its own client id: the controller stays connected
	defer c.Close()
	c.AwaitUp(f.t)
	c.MustPublish(f.t, message.Topics{Prefix: message.DefaultTopicPrefix, DeviceID: f.deviceID()}.JobNotify(), doc, 1, true)
}

// signed signs j with the device's trusted key, or with another.
func (f *fleet) signed(j message.Job, trusted bool) []byte {
	f.t.Helper()
	priv, err := sign.LoadPrivateKey(f.dev.key)
	if !trusted {
		_, priv, err = sign.GenerateKey(nil)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	doc, err := j.Sign(priv)
	if err != nil {
		f.t.Fatal(err)
	}
	return doc
}

// wait waits for job id to reach status and returns that status message.
func (f *fleet) wait(id, status string) message.JobStatus {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := f.ctl.WaitStatus(ctx, f.deviceID(), id, status)
	if err != nil {
		f.t.Fatalf("job %s never reached %s: %v; statuses so far: %+v\nagent log:\n%s", id, status, err, f.of(id), tail(f.dev.agent.log, 60))
	}
	return s
}

// of returns the statuses received for job id, in arrival order.
func (f *fleet) of(id string) []message.JobStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []message.JobStatus
	for _, s := range f.statuses {
		if s.JobID == id {
			out = append(out, s)
		}
	}
	return out
}

// Acceptance 1: a signed deployment job runs components fetched from the
// TUF repository; the controller gets QUEUED, IN_PROGRESS with steps and
// SUCCEEDED with seq strictly increasing, and the retained state lists the
// components RUNNING.
func TestMQTTDeploymentJob(t *testing.T) {
	t.Parallel()
	mqtttest.Each(t, func(t *testing.T, kind string) { deploymentJob(t, kind) })
}

func deploymentJob(t *testing.T, kind string) {
	f := newFleet(t, mqtttest.Options{Kind: kind})
	f.dev.start()
	f.connect()
	set := threeComponents(f.dev)
	f.send(f.job("job-1", f.publish(set...)))
	done := f.wait("job-1", message.StatusSucceeded)
	f.dev.requireRunning(set...)

	got := f.of("job-1")
	var seen []string
	for i, s := range got {
		seen = append(seen, s.Status+":"+s.Step)
		if i > 0 && s.Seq <= got[i-1].Seq {
			t.Errorf("seq not strictly increasing: %d after %d", s.Seq, got[i-1].Seq)
		}
		if s.DeviceID != f.deviceID() || s.AgentVersion == "" {
			t.Errorf("status %+v lacks the device or the agent version", s)
		}
	}
	if len(got) < 3 || got[0].Status != message.StatusQueued || !strings.Contains(strings.Join(seen, " "), "IN_PROGRESS:fetch") {
		t.Errorf("statuses: %v", seen)
	}
	if len(done.Components) != 3 {
		t.Errorf("the final status lists components %+v", done.Components)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := f.ctl.WaitState(ctx, f.deviceID(), func(s message.State) bool {
		running := 0
		for _, c := range s.Components {
			if c.State == "RUNNING" {
				running++
			}
		}
		return s.Online && running == 3 && s.Healthy && s.LastJob != nil && s.LastJob.JobID == "job-1"
	})
	if err != nil {
		t.Fatalf("retained state: %+v, %v", st, err)
	}
	f.dev.stop()
}

// Acceptance 2: a bad signature, an expired job, another device's job, an
// older job after a newer one ran, and the same job id again: each answered
// (REJECTED with its code, or the recorded status), nothing run twice.
func TestMQTTJobsTheDeviceRefuses(t *testing.T) {
	t.Parallel()
	mqtttest.Each(t, func(t *testing.T, kind string) { jobsTheDeviceRefuses(t, kind) })
}

func jobsTheDeviceRefuses(t *testing.T, kind string) {
	f := newFleet(t, mqtttest.Options{Kind: kind})
	f.dev.start()
	f.connect()
	set := threeComponents(f.dev)
	manifest := f.publish(set...)

	old := f.job("job-old", manifest) // created first, sent after a newer one ran
	old.CreatedAt = time.Now().Add(-time.Minute)
	f.send(f.job("job-1", manifest))
	f.wait("job-1", message.StatusSucceeded)
	pids := f.dev.requireRunning(set...)

	for _, tc := range []struct {
		id, code string
		doc      func(j message.Job) []byte
	}{
		{"job-badsig", message.CodeSignatureInvalid, func(j message.Job) []byte { return f.signed(j, false) }},
		{"job-expired", message.CodeExpired, func(j message.Job) []byte {
			j.CreatedAt, j.ExpiresAt = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
			return f.signed(j, true)
		}},
		{"job-other", message.CodeWrongDevice, func(j message.Job) []byte {
			j.DeviceID = "e2e-someone-else"
			return f.signed(j, true)
		}},
	} {
		f.sendRaw(tc.doc(f.job(tc.id, manifest)))
		if s := f.wait(tc.id, message.StatusRejected); s.ErrorCode != tc.code || s.Detail == "" {
			t.Errorf("%s: %+v, want REJECTED %s with the reason", tc.id, s, tc.code)
		}
	}
	f.send(old)
	if s := f.wait("job-old", message.StatusRejected); s.ErrorCode != message.CodeStale {
		t.Errorf("stale job: %+v", s)
	}
	// The same id again: its recorded final status, and nothing restarted.
	f.send(f.job("job-1", manifest))
	deadline := time.Now().Add(time.Minute)
	for len(f.of("job-1")) < 2 || f.of("job-1")[len(f.of("job-1"))-1].Status != message.StatusSucceeded || countFinal(f.of("job-1")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("job-1 again: statuses %+v", f.of("job-1"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if now := f.dev.requireRunning(set...); fmt.Sprint(now) != fmt.Sprint(pids) {
		t.Errorf("a repeated job restarted components: %v -> %v", pids, now)
	}
	f.dev.stop()
}

func countFinal(ss []message.JobStatus) int {
	n := 0
	for _, s := range ss {
		if message.Final(s.Status) {
			n++
		}
	}
	return n
}

// outage is how long the broker stays away in the outage test.
const outage = 30 * time.Second

// Acceptance 3: the broker goes away in the middle of a deployment and
// comes back 30 s later, with its sessions or without them: every status
// reaches the controller in order (seq strictly increasing after
// de-duplication), the job ends SUCCEEDED, nothing is left in the outbox,
// and supervision went on meanwhile.
func TestMQTTBrokerOutageLosesNothing(t *testing.T) {
	t.Parallel()
	for _, keepSessions := range []bool{true, false} {
		t.Run(fmt.Sprintf("sessions kept %v", keepSessions), func(t *testing.T) {
			t.Parallel()
			f := newFleet(t, mqtttest.Options{Persistence: true})
			f.dev.start()
			f.connect()
			base := threeComponents(f.dev)
			f.send(f.job("job-1", f.publish(base...)))
			f.wait("job-1", message.StatusSucceeded)
			pids := f.dev.requireRunning(base...)

			next := slices.Clone(base)
			next[2].version = "1.1.0"
			f.send(f.job("job-2", f.publish(next...)))
			f.wait("job-2", message.StatusQueued)
			f.broker.Stop(t)
			f.dev.waitRunning(next...) // the deployment and supervision go on without the broker
			time.Sleep(outage)
			if keepSessions {
				f.broker.Restart(t)
			} else {
				f.broker.RestartEmpty(t)
			}
			f.wait("job-2", message.StatusSucceeded)
			got := f.of("job-2")
			for i := 1; i < len(got); i++ {
				if got[i].Seq <= got[i-1].Seq {
					t.Errorf("statuses out of order or repeated: %+v", got)
				}
			}
			if got[0].Status != message.StatusQueued || got[len(got)-1].Status != message.StatusSucceeded {
				t.Errorf("statuses: %+v", got)
			}
			now := f.dev.requireRunning(next...)
			if now[f.dev.name("db")] != pids[f.dev.name("db")] {
				t.Errorf("db restarted during the outage: %d -> %d", pids[f.dev.name("db")], now[f.dev.name("db")])
			}
			f.dev.waitFor("an empty outbox", time.Minute, func() bool { return f.dev.outboxLen() == 0 })
			f.dev.stop()
		})
	}
}

// Acceptance 4: the agent is killed (SIGKILL) right after it recorded a job
// and before any status of it was published; restarted, it runs the job
// once and every status arrives.
func TestMQTTJobSurvivesAKill(t *testing.T) {
	t.Parallel()
	f := newFleet(t, mqtttest.Options{})
	f.dev.start(faultEnv + "=job:recorded")
	f.connect()
	set := threeComponents(f.dev)
	f.send(f.job("job-1", f.publish(set...)))
	f.dev.waitKilled(90 * time.Second)
	if len(f.of("job-1")) != 0 {
		t.Fatalf("a status was published before the kill: %+v", f.of("job-1"))
	}
	f.dev.start()
	f.wait("job-1", message.StatusSucceeded)
	f.dev.requireRunning(set...)
	got := f.of("job-1")
	if got[0].Status != message.StatusQueued {
		t.Errorf("the QUEUED status was lost: %+v", got)
	}
	deps := f.dev.deployments()
	if len(deps) != 1 || deps[0].ID != "job-1" {
		t.Errorf("deployments after the kill: %+v (the job must run once)", deps)
	}
	f.dev.stop()
}

// Acceptance 5: a device offline when its job was published, long enough
// for its session to expire, finds the job (retained) when it returns and
// runs it.
func TestMQTTOfflineDeviceGetsItsJob(t *testing.T) {
	t.Parallel()
	f := newFleetWith(t, mqtttest.Options{Persistence: true}, "session_expiry = \"1s\"\n")
	f.dev.start()
	f.connect()
	set := threeComponents(f.dev)
	manifest := f.publish(set...)
	f.dev.stop()
	time.Sleep(3 * time.Second) // past the session's expiry
	f.send(f.job("job-1", manifest))
	f.dev.start()
	f.wait("job-1", message.StatusSucceeded)
	f.dev.requireRunning(set...)
	f.dev.stop()
}

// outboxLen reads keystone_outbox_pending from the agent's /metrics (on its
// socket).
func (d *device) outboxLen() int {
	d.t.Helper()
	c := api.NewClient(d.sock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	text, err := c.Metrics(ctx)
	if err != nil {
		d.t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^keystone_outbox_pending (\d+)`).FindSubmatch(text)
	if m == nil {
		d.t.Fatalf("no keystone_outbox_pending in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// deployments is deploy list -o json.
func (d *device) deployments() []api.Deployment {
	d.t.Helper()
	var list []api.Deployment
	d.ctlJSON(&list, "deploy", "list")
	return list
}

// Acceptance 6, the agent's part: a broker whose certificate does not chain
// to mqtt.ca_file is refused, the reason is logged, the agent runs on
// (supervising, local API up) and keystone_mqtt_connected stays 0.
func TestMQTTUntrustedBrokerIsRefusedWithTheReason(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	d := newDevice(t, deviceOptions{extra: func(d *device) string {
		id := b.Device(t, "e2e-"+d.tag)
		other := mqtttest.NewCA(t, t.TempDir(), "some other CA")
		return fmt.Sprintf("[mqtt]\nbroker = %q\nca_file = %q\ncert_file = %q\nkey_file = %q\n", b.URL, other.File, id.CertFile, id.KeyFile)
	}})
	d.start()
	d.waitFor("the refusal in the agent's log", time.Minute, func() bool {
		log, _ := os.ReadFile(d.agent.log)
		return strings.Contains(string(log), "certificate signed by unknown authority")
	})
	c := api.NewClient(d.sock)
	defer c.Close()
	text, err := c.Metrics(context.Background())
	if err != nil || !strings.Contains(string(text), "keystone_mqtt_connected 0") {
		t.Errorf("keystone_mqtt_connected is not 0 (%v)", err)
	}
	d.ctlOK("component", "list")
	d.stop()
}
