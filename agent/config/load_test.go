package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/recipes"
)

func TestLoadSpecExample(t *testing.T) {
	c, err := config.Load(filepath.Join("testdata", "full.toml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &config.Config{
		DeviceID:     "pos-12",
		Groups:       []string{"canary", "kyiv"},
		DataDir:      "/var/lib/keystone",
		RootDir:      "/opt/keystone",
		DefaultRunAs: "keystone:keystone",
		LogLevel:     "info",
		API:          config.API{Socket: "/run/keystone/agent.sock", HTTPListen: "127.0.0.1:9455"},
		MQTT: config.MQTT{
			Broker:      "mqtts://broker.example:8883",
			CAFile:      "/etc/keystone/ca.pem",
			CertFile:    "/etc/keystone/device.pem",
			KeyFile:     "/etc/keystone/device.key",
			TopicPrefix: "keystone", SessionExpiry: recipes.Duration{Duration: 168 * time.Hour},
		},
		Trust: config.Trust{
			Keys:       []string{"/etc/keystone/trust/ops.pub"},
			TUFRoot:    "/etc/keystone/tuf/root.json",
			Repository: "https://repo.example/keystone/",
		},
		Artifacts:  config.Artifacts{CacheLimit: 2 << 30, KeepVersions: 2, MaxUnpackedSize: 1 << 30, MaxEntries: 20000},
		Plugins:    config.Plugins{TextfileDir: "/var/lib/prometheus/node-exporter"},
		Components: map[string]map[string]any{"com.example.hello": {"interval_seconds": int64(10)}},
		Source:     filepath.Join("testdata", "full.toml"),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(full.toml) =\n%+v\nwant\n%+v", c, want)
	}
	if user, group := c.RunAs(); user != "keystone" || group != "keystone" {
		t.Errorf("RunAs() = %q, %q", user, group)
	}
}

func TestDefaults(t *testing.T) {
	c, err := config.Parse("agent.toml", []byte(`device_id = "dev-1"`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := config.Default()
	want.DeviceID = "dev-1"
	want.Source = "agent.toml"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse(minimal) =\n%+v\nwant\n%+v", c, want)
	}
	for name, got := range map[string]any{
		"data_dir":                    c.DataDir,
		"root_dir":                    c.RootDir,
		"api.socket":                  c.API.Socket,
		"api.http_listen":             c.API.HTTPListen,
		"mqtt.topic_prefix":           c.MQTT.TopicPrefix,
		"artifacts.cache_limit":       c.Artifacts.CacheLimit,
		"artifacts.keep_versions":     c.Artifacts.KeepVersions,
		"artifacts.max_unpacked_size": c.Artifacts.MaxUnpackedSize,
		"artifacts.max_entries":       c.Artifacts.MaxEntries,
		"log_level":                   c.LogLevel,
		"mqtt.broker":                 c.MQTT.Broker,
		"default_run_as":              c.DefaultRunAs,
	} {
		wantV := map[string]any{
			"data_dir":                    "/var/lib/keystone",
			"root_dir":                    "/opt/keystone",
			"api.socket":                  "/run/keystone/agent.sock",
			"api.http_listen":             "127.0.0.1:9455",
			"mqtt.topic_prefix":           "keystone",
			"artifacts.cache_limit":       recipes.Size(2 << 30),
			"artifacts.keep_versions":     2,
			"artifacts.max_unpacked_size": recipes.Size(1 << 30),
			"artifacts.max_entries":       20000,
			"log_level":                   "info",
			"mqtt.broker":                 "",
			"default_run_as":              "",
		}[name]
		if got != wantV {
			t.Errorf("default %s = %v, want %v", name, got, wantV)
		}
	}
	if c.Components != nil || c.Groups != nil {
		t.Errorf("Components = %v, Groups = %v; want nil", c.Components, c.Groups)
	}
}

func TestHTTPListenAbsentVersusEmpty(t *testing.T) {
	for _, tt := range []struct {
		doc  string
		want string
	}{
		{"device_id = \"d\"\n", "127.0.0.1:9455"},
		{"device_id = \"d\"\n[api]\nsocket = \"/tmp/a.sock\"\n", "127.0.0.1:9455"},
		{"device_id = \"d\"\n[api]\nhttp_listen = \"\"\n", ""},
		{"device_id = \"d\"\n[api]\nhttp_listen = \"[::1]:0\"\n", "[::1]:0"},
	} {
		c, err := config.Parse("agent.toml", []byte(tt.doc))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.doc, err)
		}
		if c.API.HTTPListen != tt.want {
			t.Errorf("Parse(%q).API.HTTPListen = %q, want %q", tt.doc, c.API.HTTPListen, tt.want)
		}
	}
}

func TestOptionalKeys(t *testing.T) {
	doc := `
device_id = "lab.7"
log_level = "debug"
default_run_as = "edge"
[api]
socket_group = "keystone-ops"
[mqtt]
broker = "mqtt://127.0.0.1:1883"
insecure = true
[artifacts]
cache_limit = "512Mi"
keep_versions = 1
max_unpacked_size = "256MiB"
max_entries = 500
[dev]
watch_dir = "/srv/recipes"
[components."com.example.a"]
[components."com.example.b".config]
nested = { depth = 2, list = ["x", "y"] }
`
	c, err := config.Parse("agent.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !c.MQTT.Insecure || c.MQTT.Broker != "mqtt://127.0.0.1:1883" {
		t.Errorf("MQTT = %+v", c.MQTT)
	}
	if c.API.SocketGroup != "keystone-ops" || c.Dev.WatchDir != "/srv/recipes" {
		t.Errorf("API = %+v, Dev = %+v", c.API, c.Dev)
	}
	if c.Artifacts.CacheLimit != 512<<20 || c.Artifacts.KeepVersions != 1 ||
		c.Artifacts.MaxUnpackedSize != 256<<20 || c.Artifacts.MaxEntries != 500 {
		t.Errorf("Artifacts = %+v", c.Artifacts)
	}
	if c.SlogLevel().String() != "DEBUG" {
		t.Errorf("SlogLevel() = %v", c.SlogLevel())
	}
	if user, group := c.RunAs(); user != "edge" || group != "" {
		t.Errorf("RunAs() = %q, %q", user, group)
	}
	wantComponents := map[string]map[string]any{
		"com.example.a": {},
		"com.example.b": {"nested": map[string]any{"depth": int64(2), "list": []any{"x", "y"}}},
	}
	if !reflect.DeepEqual(c.Components, wantComponents) {
		t.Errorf("Components = %#v, want %#v", c.Components, wantComponents)
	}
}

func TestRelativePathsFollowTheFile(t *testing.T) {
	dir := t.TempDir()
	doc := `device_id = "d"
data_dir = "data"
root_dir = "/abs/root"
[api]
socket = "run/agent.sock"
[mqtt]
broker = "mqtts://b.example:8883"
ca_file = "pki/ca.pem"
cert_file = "pki/dev.pem"
key_file = "../secret/dev.key"
[trust]
keys = ["keys/ops.pub", "/etc/other.pub"]
tuf_root = "tuf/root.json"
repository = "https://repo.example/"
[artifacts]
ca_file = "pki/extra.pem"
[plugins]
textfile_dir = "prom"
[dev]
watch_dir = "watch"
`
	path := filepath.Join(dir, "etc", "agent.toml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	etc := filepath.Join(dir, "etc")
	for _, p := range []struct{ key, got, want string }{
		{"data_dir", c.DataDir, filepath.Join(etc, "data")},
		{"root_dir", c.RootDir, "/abs/root"},
		{"api.socket", c.API.Socket, filepath.Join(etc, "run/agent.sock")},
		{"mqtt.ca_file", c.MQTT.CAFile, filepath.Join(etc, "pki/ca.pem")},
		{"mqtt.cert_file", c.MQTT.CertFile, filepath.Join(etc, "pki/dev.pem")},
		{"mqtt.key_file", c.MQTT.KeyFile, filepath.Join(dir, "secret/dev.key")},
		{"trust.keys[0]", c.Trust.Keys[0], filepath.Join(etc, "keys/ops.pub")},
		{"trust.keys[1]", c.Trust.Keys[1], "/etc/other.pub"},
		{"trust.tuf_root", c.Trust.TUFRoot, filepath.Join(etc, "tuf/root.json")},
		{"artifacts.ca_file", c.Artifacts.CAFile, filepath.Join(etc, "pki/extra.pem")},
		{"plugins.textfile_dir", c.Plugins.TextfileDir, filepath.Join(etc, "prom")},
		{"dev.watch_dir", c.Dev.WatchDir, filepath.Join(etc, "watch")},
	} {
		if p.got != p.want {
			t.Errorf("%s = %q, want %q", p.key, p.got, p.want)
		}
	}

	// Parse joins to the folder of the name it is given.
	c, err = config.Parse("conf/agent.toml", []byte("device_id = \"d\"\ndata_dir = \"data\"\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.DataDir != filepath.Join("conf", "data") {
		t.Errorf("Parse(conf/agent.toml) data_dir = %q, want conf/data", c.DataDir)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "read agent config") {
		t.Errorf("error %q does not say what was being done", err)
	}
}
