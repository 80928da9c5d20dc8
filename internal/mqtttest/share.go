package mqtttest

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// Shared is what another process needs to use a broker a test started:
// its address, topic prefix and controller name, and the CA's certificate
// and key files so that it can issue its own client identities. It is
// plain data, to be passed to the other process (as JSON, say).
type Shared struct {
	Kind       string
	URL        string
	Addr       string
	Prefix     string
	Controller string
	CAFile     string
	CAKeyFile  string
}

// Share writes the CA's key next to its certificate (0600, in the test's
// folder) and returns what Attach needs in another process.
func (b *Broker) Share(t testing.TB) Shared {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(b.CA.key)
	if err != nil {
		t.Fatal(err)
	}
	key := writeFile(t, b.dir, b.CA.Name+"-ca.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	return Shared{Kind: b.Kind, URL: b.URL, Addr: b.Addr, Prefix: b.Prefix, Controller: b.Controller,
		CAFile: b.CAFile, CAKeyFile: key}
}

// Attach returns a Broker for a broker another process started and
// shared: Device, ControllerIdentity and Dial work on it; Stop, Restart
// and RestartEmpty fail the test, as this process does not own it.
func Attach(t testing.TB, s Shared) *Broker {
	t.Helper()
	ca := LoadCA(t, "keystone-test", s.CAFile, s.CAKeyFile)
	return &Broker{Kind: s.Kind, URL: s.URL, Addr: s.Addr, CAFile: s.CAFile, CA: ca, Prefix: s.Prefix,
		Controller: s.Controller, dir: t.TempDir(), log: newLogFile(t, "/dev/null"), running: true}
}

// PID returns the mosquitto process's id while it runs; 0 for mochi (in
// this process), a broker attached from elsewhere or a stopped one.
func (b *Broker) PID() int {
	if m, ok := b.server.(*mosquitto); ok && m.cmd != nil && m.cmd.Process != nil {
		return m.cmd.Process.Pid
	}
	return 0
}
