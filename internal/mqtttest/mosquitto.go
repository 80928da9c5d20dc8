package mqtttest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readyTimeout bounds how long a broker may take to start or stop before
// the test fails; it is a guard against a hang, not a measure.
const readyTimeout = 20 * time.Second

// mosquitto runs /usr/sbin/mosquitto in the foreground with its own
// configuration, certificates, access list and persistence file, all in
// the test's folder.
type mosquitto struct {
	path     string
	dir      string
	conf     string
	dataDir  string
	certFile string // the broker's certificate and key
	keyFile  string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	drained  chan struct{} // closed when its output has been read to the end
}

func newMosquitto(t testing.TB, b *Broker) *mosquitto {
	t.Helper()
	m := &mosquitto{path: mosquittoPath(), dir: b.dir, dataDir: filepath.Join(b.dir, "data")}
	if err := os.MkdirAll(m.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, b.dir, "acl", []byte(aclText(b.Prefix, b.Controller)))
	m.certFile, m.keyFile, _ = b.serverCert(t)
	return m
}

// aclText pins a device (its username is its certificate's common name)
// to <prefix>/<name>/# and lets the controller use all of <prefix>/#.
// mosquitto 2.0 grants a subscription to any filter but checks every
// message against these lines before delivering it, and every publish
// before taking it (refused with "not authorized"), so a subscription
// through $share/<group>/ is held to the same rules.
func aclText(prefix, controller string) string {
	return fmt.Sprintf("pattern readwrite %s/%%u/#\n\nuser %s\ntopic readwrite %s/#\n", prefix, controller, prefix)
}

// config is mosquitto's configuration for one port. "user root" because
// mosquitto started as root switches to the mosquitto user before it
// reads the certificates, and the test's folder is private to the user
// running the test; started by another user it stays that user. It logs
// to stderr, which C leaves unbuffered: its stdout, a pipe here, would
// hold the line that says it runs until it exits.
func (m *mosquitto) config(b *Broker, port string) string {
	persist := "persistence false\n"
	if b.opts.Persistence {
		persist = fmt.Sprintf("persistence true\npersistence_location %s/\npersistence_file mosquitto.db\nautosave_interval 0\n", m.dataDir)
	}
	return fmt.Sprintf(`# written by internal/mqtttest
per_listener_settings false
allow_anonymous false
user root
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
log_timestamp_format %%H:%%M:%%S
connection_messages true
# A controller's one subscription takes every device's statuses: mosquitto's
# default queue of 1000 messages per client drops the rest of a burst.
max_queued_messages 1000000
# No cap on clients (the default, said here): a simulated fleet connects
# tens of thousands; the open-file limit mosquitto inherits from the test
# is the bound that remains.
max_connections -1
acl_file %s
%s
listener %s 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
`, filepath.Join(m.dir, "acl"), persist, port, b.CAFile, m.certFile, m.keyFile)
}

// start runs mosquitto. On the first start it looks for a free port; a
// port taken between the look and mosquitto's bind is retried with
// another.
func (m *mosquitto) start(t testing.TB, b *Broker) error {
	t.Helper()
	if b.Addr != "" {
		return m.startOn(t, b, b.Addr)
	}
	var err error
	for range 3 {
		var addr string
		if addr, err = freePort(); err != nil {
			return err
		}
		if err = m.startOn(t, b, addr); err == nil {
			b.Addr = addr
			return nil
		}
		if !strings.Contains(b.log.String(), "Address already in use") {
			return err
		}
	}
	return err
}

func (m *mosquitto) startOn(t testing.TB, b *Broker, addr string) error {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	m.conf = writeFile(t, m.dir, "mosquitto.conf", []byte(m.config(b, port)))
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(m.path, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	pw.Close()
	m.cmd, m.exited, m.drained = cmd, make(chan struct{}), make(chan struct{})
	ready := make(chan struct{})
	go m.copyLog(pr, b.log, ready)
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()
	select {
	case <-ready:
		return nil
	case <-m.exited:
		<-m.drained
		return fmt.Errorf("mosquitto exited at start: %v", cmd.ProcessState)
	case <-time.After(readyTimeout):
		m.stop(t)
		return errors.New("mosquitto did not log that it runs")
	}
}

// copyLog copies mosquitto's output to the log and closes ready at the
// line that says it accepts connections ("mosquitto version X running").
func (m *mosquitto) copyLog(r io.ReadCloser, log *logFile, ready chan struct{}) {
	defer close(m.drained)
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(log, line)
		if ready != nil && strings.Contains(line, "mosquitto version") && strings.HasSuffix(line, "running") {
			close(ready)
			ready = nil
		}
	}
}

// stop sends SIGTERM (mosquitto then writes its persistence file) and
// waits for the process and its output to end.
func (m *mosquitto) stop(t testing.TB) {
	t.Helper()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(readyTimeout):
		_ = m.cmd.Process.Kill()
		<-m.exited
		t.Errorf("mosquitto did not stop on SIGTERM; killed")
	}
	<-m.drained
	m.cmd = nil
}

func (m *mosquitto) forget(t testing.TB) {
	t.Helper()
	if err := os.Remove(filepath.Join(m.dataDir, "mosquitto.db")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
