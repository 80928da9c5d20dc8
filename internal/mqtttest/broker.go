package mqtttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The broker kinds.
const (
	KindMosquitto = "mosquitto"
	KindMochi     = "mochi"
)

// EnvBroker names the environment variable that forces one broker kind
// (mosquitto or mochi) for every test.
const EnvBroker = "KEYSTONE_MQTT_BROKER"

// DefaultController is the common name of the controller identity.
const DefaultController = "keystone-controller"

// Options says how to start a broker. The zero value is a broker of the
// default kind, without persistence, for the topic prefix "keystone".
type Options struct {
	// Kind is KindMosquitto or KindMochi; empty means EnvBroker's value, or
	// else mosquitto when installed and mochi when not.
	Kind string
	// Persistence keeps sessions (subscriptions, queued messages) and
	// retained messages across Stop and Restart. mosquitto keeps them in
	// its own file, written when it stops; mochi keeps them in memory in
	// the Broker value. Without it a restart starts empty.
	Persistence bool
	// TopicPrefix is the first level of every topic the access list
	// allows; empty means "keystone".
	TopicPrefix string
	// Controller is the common name allowed on all of <prefix>/#; empty
	// means DefaultController.
	Controller string
	// CA signs the broker's certificate and is what the broker trusts
	// clients by (see LoadCA, for a CA made by keystonectl ca init); nil
	// makes a new one for the test.
	CA *CA
	// ServerCertFile and ServerKeyFile are the broker's certificate and
	// key (PEM), issued by CA for 127.0.0.1; empty: CA issues one for
	// 127.0.0.1, ::1 and localhost.
	ServerCertFile, ServerKeyFile string
}

// Broker is one running (or stopped) test broker. Stop, Restart and
// RestartEmpty are for the test's goroutine; the others may be called
// from any.
type Broker struct {
	Kind       string
	URL        string // mqtts://127.0.0.1:PORT; stays the same across restarts
	Addr       string // 127.0.0.1:PORT
	CAFile     string // PEM of the CA that signed the broker's and the clients' certificates
	CA         *CA
	Prefix     string
	Controller string // the controller identity's common name

	opts    Options
	dir     string
	log     *logFile
	server  server
	running bool

	mu      sync.Mutex
	foreign *CA // made on first use
}

// server is one broker implementation.
type server interface {
	// start runs the broker on b.Addr (on a free port when b.Addr is empty,
	// setting it) and returns once it accepts connections.
	start(t testing.TB, b *Broker) error
	// stop ends it and waits until it is gone.
	stop(t testing.TB)
	// forget deletes what persistence kept. Only while stopped.
	forget(t testing.TB)
}

// Start starts a broker for the test and stops it when the test ends; on
// failure the broker's log goes to the test log.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	kind := resolveKind(t, opts.Kind)
	b := &Broker{Kind: kind, opts: opts, dir: t.TempDir(),
		Prefix: opts.TopicPrefix, Controller: opts.Controller}
	if b.Prefix == "" {
		b.Prefix = "keystone"
	}
	if b.Controller == "" {
		b.Controller = DefaultController
	}
	b.CA = opts.CA
	if b.CA == nil {
		b.CA = NewCA(t, b.dir, "keystone-test")
	}
	b.CAFile = b.CA.File
	b.log = newLogFile(t, filepath.Join(b.dir, "broker.log"))
	switch kind {
	case KindMosquitto:
		b.server = newMosquitto(t, b)
	default:
		b.server = newMochi(t, b)
	}
	t.Cleanup(func() {
		if b.running {
			b.server.stop(t)
			b.running = false
		}
		if t.Failed() {
			t.Logf("%s broker log (%s):\n%s", b.Kind, b.Addr, b.log.String())
		}
	})
	if err := b.server.start(t, b); err != nil {
		t.Fatalf("start %s: %v", kind, err) // the cleanup shows the broker's log
	}
	b.running = true
	b.URL = "mqtts://" + b.Addr
	return b
}

// Device returns a client identity whose certificate's common name is
// name (a device id), signed by the broker's CA.
func (b *Broker) Device(t testing.TB, name string) *Identity {
	t.Helper()
	return b.CA.Client(t, name, nil)
}

// ControllerIdentity returns the identity allowed on all of <prefix>/#.
func (b *Broker) ControllerIdentity(t testing.TB) *Identity {
	t.Helper()
	return b.CA.Client(t, b.Controller, nil)
}

// NoCertificate returns an identity that trusts the broker but presents
// no certificate: the broker must refuse it.
func (b *Broker) NoCertificate(t testing.TB) *Identity {
	return &Identity{Name: "", CAFile: b.CAFile, roots: b.CA.pool()}
}

// Foreign returns an identity named name whose certificate comes from a
// second CA the broker does not trust (it trusts the broker's CA itself)
// and that presents it whatever CAs the broker names: the broker must
// refuse it.
func (b *Broker) Foreign(t testing.TB, name string) *Identity {
	t.Helper()
	b.mu.Lock()
	if b.foreign == nil {
		b.foreign = NewCA(t, b.dir, "unrelated")
	}
	ca := b.foreign
	b.mu.Unlock()
	id := ca.Client(t, name, b.CA)
	id.always = true
	return id
}

// Stop stops the broker; connected clients lose their connection.
// Persisted state stays for Restart.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	if b.server == nil {
		t.Fatalf("stop %s: attached from another process, which owns it", b.Kind)
	}
	if !b.running {
		t.Fatalf("stop %s: not running", b.Kind)
	}
	b.server.stop(t)
	b.running = false
	b.log.mark("broker stopped")
}

// Restart starts the broker again on the same port (stopping it first if
// it runs). With Options.Persistence, sessions and retained messages are
// those it had when it stopped.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.restart(t, false)
}

// RestartEmpty restarts the broker on the same port with whatever
// persistence kept deleted: every session and retained message is gone,
// as after a broker lost its disk.
func (b *Broker) RestartEmpty(t testing.TB) {
	t.Helper()
	b.restart(t, true)
}

func (b *Broker) restart(t testing.TB, forget bool) {
	t.Helper()
	if b.server == nil {
		t.Fatalf("restart %s: attached from another process, which owns it", b.Kind)
	}
	if b.running {
		b.Stop(t)
	}
	if forget {
		b.server.forget(t)
		b.log.mark("persistence deleted")
	}
	if err := b.server.start(t, b); err != nil {
		t.Fatalf("restart %s on %s: %v", b.Kind, b.Addr, err)
	}
	b.running = true
	b.log.mark("broker restarted")
}

// Log returns what the broker has logged so far.
func (b *Broker) Log() string { return b.log.String() }

// WaitLog waits until the broker has logged a line containing s; mosquitto
// writes from another process, so a line may come a little after the
// event it tells of.
func (b *Broker) WaitLog(t testing.TB, s string) {
	t.Helper()
	if !b.log.wait(s, time.After(WaitTimeout)) {
		t.Fatalf("the %s broker did not log %q within %s", b.Kind, s, WaitTimeout)
	}
}

// mosquittoPath returns the mosquitto program, or "" when it is absent.
func mosquittoPath() string {
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	return ""
}

func inCI() bool { return os.Getenv("CI") == "true" }

// resolveKind picks the broker for a test, failing or skipping it (with
// the reason) when the kind asked for cannot run here.
func resolveKind(t testing.TB, asked string) string {
	t.Helper()
	kind, v, why := choose(asked, os.Getenv(EnvBroker), mosquittoPath() != "", inCI())
	switch v {
	case fail:
		t.Fatal(why)
	case skip:
		t.Skip(why)
	}
	if why != "" {
		t.Log(why)
	}
	return kind
}

type verdict int

const (
	run verdict = iota
	skip
	fail
)

const absent = "mosquitto is not installed (no /usr/sbin/mosquitto, none on PATH); install it with apt-get install mosquitto"

// choose decides which broker a test runs against: the kind asked for,
// else the one forced by EnvBroker, else mosquitto when installed and
// mochi when not. A test that needs mosquitto where it is absent is
// skipped, or fails under CI. why says what a test log should show.
func choose(asked, forced string, installed, ci bool) (kind string, v verdict, why string) {
	if asked == "" {
		asked = forced
	}
	switch asked {
	case "":
		if installed {
			return KindMosquitto, run, ""
		}
		if ci {
			return "", fail, "CI=true: MOSQUITTO IS NOT INSTALLED, and CI must test against it: " + absent
		}
		return KindMochi, run, "*** MOSQUITTO IS NOT INSTALLED: this test runs against the in-process mochi broker only ***"
	case KindMosquitto:
		if installed {
			return KindMosquitto, run, ""
		}
		if ci {
			return "", fail, "CI=true: " + absent
		}
		return "", skip, "SKIPPED, NOT PASSED: " + absent
	case KindMochi:
		return KindMochi, run, ""
	}
	return "", fail, fmt.Sprintf("broker kind %q (%s=%q): want %q or %q", asked, EnvBroker, forced, KindMosquitto, KindMochi)
}

// Each runs fn as one subtest per broker kind: mosquitto and mochi. A kind
// forced by EnvBroker runs alone (the other subtest is skipped, saying
// so); mosquitto's subtest is skipped where it is not installed, and fails
// instead under CI=true.
func Each(t *testing.T, fn func(t *testing.T, kind string)) {
	t.Helper()
	forced := os.Getenv(EnvBroker)
	for _, kind := range []string{KindMosquitto, KindMochi} {
		t.Run(kind, func(t *testing.T) {
			if forced != "" && forced != kind {
				if _, v, why := choose(forced, forced, true, false); v == fail {
					t.Fatal(why)
				}
				t.Skipf("%s=%s: the %s run is left out", EnvBroker, forced, kind)
			}
			fn(t, resolveKind(t, kind))
		})
	}
}

// logFile collects a broker's log lines, from the process or in-process
// logger, into a file and memory.
type logFile struct {
	mu      sync.Mutex
	f       *os.File
	text    strings.Builder
	changed chan struct{} // closed and replaced at every write
}

func newLogFile(t testing.TB, path string) *logFile {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l := &logFile{f: f, changed: make(chan struct{})}
	t.Cleanup(func() { l.close() })
	return l
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text.Write(p)
	if l.f != nil {
		_, _ = l.f.Write(p)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logFile) mark(what string) { fmt.Fprintf(l, "----- %s -----\n", what) }

func (l *logFile) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.text.String()
}

// wait waits until the log contains s, or the deadline passes.
func (l *logFile) wait(s string, deadline <-chan time.Time) bool {
	for {
		l.mu.Lock()
		found, changed := strings.Contains(l.text.String(), s), l.changed
		l.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			return false
		}
	}
}

// close ends the file; later writes (a straggling log line of a broker
// that is gone) only reach memory.
func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}
