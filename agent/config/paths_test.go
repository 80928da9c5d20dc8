package config_test

import (
	"testing"

	"github.com/keystone-edge/keystone/agent/config"
)

func TestDataPaths(t *testing.T) {
	c, err := config.Parse("/etc/keystone/agent.toml", []byte("device_id = \"d\"\ndata_dir = \"/data\"\nroot_dir = \"/opt/ks\"\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p := c.DataPaths()
	for _, tt := range []struct{ name, got, want string }{
		{"Dir", p.Dir, "/data"},
		{"DB", p.DB, "/data/keystone.db"},
		{"Components", p.Components, "/data/components"},
		{"Work", p.Work, "/data/work"},
		{"Artifacts", p.Artifacts, "/data/artifacts"},
		{"Logs", p.Logs, "/data/logs"},
		{"VersionDir", p.VersionDir("com.example.hello", "1.2.0"), "/data/components/com.example.hello/1.2.0"},
		{"WorkDir", p.WorkDir("com.example.hello"), "/data/work/com.example.hello"},
		{"Artifact", p.Artifact("ab12"), "/data/artifacts/ab12"},
		{"LogFile", p.LogFile("com.example.hello"), "/data/logs/com.example.hello.log"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if got := config.NewDataPaths("/override"); got.DB != "/override/keystone.db" {
		t.Errorf("NewDataPaths(/override).DB = %q", got.DB)
	}

	r := c.ReleasePaths()
	for _, tt := range []struct{ name, got, want string }{
		{"Dir", r.Dir, "/opt/ks"},
		{"Releases", r.Releases, "/opt/ks/releases"},
		{"Current", r.Current, "/opt/ks/current"},
		{"Release", r.Release("1.4.0"), "/opt/ks/releases/1.4.0"},
	} {
		if tt.got != tt.want {
			t.Errorf("ReleasePaths %s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
