package comms

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// New refuses a configuration it cannot work with, naming the setting or
// the file at fault, without touching the network.
func TestNewChecksTheConfiguration(t *testing.T) {
	dir := t.TempDir()
	ca := mqtttest.NewCA(t, dir, "ca")
	id := ca.Client(t, deviceID, nil)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(dir, "keystone.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := Config{DeviceID: deviceID, BrokerURL: "mqtts://broker.example", CAFile: ca.File, CertFile: id.CertFile,
		KeyFile: id.KeyFile, Store: st, Deployer: &engineDouble{}, Bus: events.New(nil)}
	d, err := New(good)
	if err != nil {
		t.Fatalf("a good configuration: %v", err)
	}
	if d.cfg.url.String() != "mqtts://broker.example:8883" || d.cfg.SessionExpiry != DefaultSessionExpiry || d.cfg.TopicPrefix != "keystone" {
		t.Errorf("defaults: %s %s %s", d.cfg.url, d.cfg.SessionExpiry, d.cfg.TopicPrefix)
	}
	plain := good
	plain.BrokerURL, plain.Insecure, plain.CertFile, plain.KeyFile = "mqtt://broker.example", true, "", ""
	if d, err := New(plain); err != nil || d.cfg.url.Port() != "1883" || d.cfg.tls != nil {
		t.Errorf("an insecure plain URL: %v", err)
	}

	for _, tc := range []struct {
		name string
		mod  func(*Config)
		says string
	}{
		{"no device id", func(c *Config) { c.DeviceID = "" }, "device id"},
		{"a device id with a slash", func(c *Config) { c.DeviceID = "a/b" }, `"a/b"`},
		{"no broker", func(c *Config) { c.BrokerURL = "" }, "no broker URL"},
		{"plain without insecure", func(c *Config) { c.BrokerURL = "mqtt://broker.example" }, "insecure = true"},
		{"a web URL", func(c *Config) { c.BrokerURL = "https://broker.example" }, `scheme "https"`},
		{"no host", func(c *Config) { c.BrokerURL = "mqtts://:8883" }, "no host"},
		{"no certificate", func(c *Config) { c.CertFile = "" }, "cert_file and key_file are required"},
		{"missing CA file", func(c *Config) { c.CAFile = filepath.Join(dir, "gone.pem") }, "gone.pem"},
		{"CA file not PEM", func(c *Config) { c.CAFile = notPEM }, "ca_file " + notPEM + " holds no PEM"},
		{"key not matching", func(c *Config) { c.KeyFile = ca.Client(t, "other", nil).KeyFile }, "key_file"},
		{"wildcard prefix", func(c *Config) { c.TopicPrefix = "a/#" }, "topic prefix"},
		{"negative expiry", func(c *Config) { c.SessionExpiry = -time.Second }, "negative"},
		{"no store", func(c *Config) { c.Store = nil }, "no store"},
		{"no engine", func(c *Config) { c.Deployer = nil }, "no deployment engine"},
		{"no bus", func(c *Config) { c.Bus = nil }, "no event bus"},
	} {
		cfg := good
		tc.mod(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v; want an error saying %q", tc.name, err, tc.says)
		}
	}
}

// A broker that cannot be reached is a warning, retried, never fatal: Run
// serves until its context ends and returns nil.
func TestUnreachableBrokerIsNotFatal(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	r := &rig{t: t, b: b, logs: newLogSink(t)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "keystone.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bus := events.New(nil)
	r.st, r.bus, r.eng = st, bus, newEngineDouble(t, bus)
	r.setComponents()
	d := r.newDevice(func(c *Config) { c.BrokerURL = "mqtts://" + addr })
	rd := r.run(d)
	r.logs.wait(t, "cannot reach the MQTT broker; retrying", "connection refused")
	if d.Connected() {
		t.Error("connected to nothing")
	}
	rd.stop(t)
	if n, err := st.OutboxLen(t.Context()); err != nil || n != 1 {
		t.Errorf("outbox after a run offline: %d, %v; want the offline state waiting", n, err)
	}
}
