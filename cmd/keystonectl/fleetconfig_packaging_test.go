package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The fleet.toml the keystone-fleet package installs: as shipped it is
// refused for its missing keys only (the unit is skipped until the broker
// is set), and with every commented key uncommented it is a valid
// configuration at the documented places.
func TestPackagedFleetConfig(t *testing.T) {
	shipped, err := os.ReadFile("../../packaging/keystone-fleet/fleet.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	asShipped := filepath.Join(dir, "shipped.toml")
	if err := os.WriteFile(asShipped, shipped, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = loadFleetConfig(asShipped)
	if err == nil || !strings.HasSuffix(err.Error(), "missing required key(s): broker, ca_file, cert_file, key_file, state") {
		t.Fatalf("the shipped fleet.toml: got %v, want only the required keys missing", err)
	}

	setting := regexp.MustCompile(`(?m)^#([a-z_]+ *=)`)
	filled := filepath.Join(dir, "filled.toml")
	if err := os.WriteFile(filled, setting.ReplaceAll(shipped, []byte("$1")), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := loadFleetConfig(filled)
	if err != nil {
		t.Fatalf("the shipped fleet.toml with its examples uncommented: %v", err)
	}
	want := fleetConfig{
		Broker: "mqtts://broker.example:8883", CAFile: "/etc/keystone-fleet/ca.pem",
		CertFile: "/etc/keystone-fleet/controller.pem", KeyFile: "/etc/keystone-fleet/controller.key",
		TopicPrefix: "keystone", State: "/var/lib/keystone-fleet/fleet.db", SignKey: "/etc/keystone-fleet/ops.key",
	}
	if *c != want {
		t.Errorf("got %+v\nwant %+v", *c, want)
	}
}
