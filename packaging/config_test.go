package packaging

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/config"
)

// shippedAgentConfig is /etc/keystone/agent.toml as the package installs it.
const shippedAgentConfig = "keystone/agent.toml"

// commentedSetting is a line such as `#data_dir = "/var/lib/keystone"` or
// `#[api]`: '#' right before a key or a table header. Prose comments have a
// space after '#'.
var commentedSetting = regexp.MustCompile(`^#([A-Za-z_\[].*)$`)

// The shipped file, as is, is refused for one reason only: it names no
// device_id (the device is not provisioned yet).
func TestShippedAgentConfigNeedsOnlyADeviceID(t *testing.T) {
	doc := readFile(t, shippedAgentConfig)
	_, err := config.Parse("/etc/keystone/agent.toml", doc)
	if err == nil {
		t.Fatal("the shipped agent.toml parses without a device_id; the unit's start condition assumes it does not")
	}
	if got, want := err.Error(), "/etc/keystone/agent.toml: device_id: required"; got != want {
		t.Fatalf("the shipped agent.toml is refused for more than its missing device_id:\n got %s\nwant %s", got, want)
	}

	// What provisioning does at the least: add a device_id.
	cfg, err := config.Parse("/etc/keystone/agent.toml", append(doc, "device_id = \"pos-12\"\n"...))
	if err != nil {
		t.Fatalf("the shipped agent.toml with a device_id is refused:\n%v", err)
	}
	want := config.Default()
	want.DeviceID, want.DefaultRunAs = "pos-12", "keystone:keystone"
	assertConfig(t, cfg, want)
}

// Every commented setting is a real key with its real default: the file
// with all of them uncommented is the defaults.
func TestShippedAgentConfigCommentsAreTheDefaults(t *testing.T) {
	var b strings.Builder
	for line := range strings.Lines(string(readFile(t, shippedAgentConfig))) {
		if m := commentedSetting.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
			line = m[1] + "\n"
		}
		b.WriteString(line)
	}
	cfg, err := config.Parse("/etc/keystone/agent.toml", []byte(b.String()))
	if err != nil {
		t.Fatalf("agent.toml with every commented setting uncommented is refused:\n%v\n%s", err, b.String())
	}
	want := config.Default()
	want.DeviceID, want.DefaultRunAs = "pos-12", "keystone:keystone"
	assertConfig(t, cfg, want)
}

func assertConfig(t *testing.T, got, want *config.Config) {
	t.Helper()
	g := *got
	g.Source, g.Components = want.Source, want.Components
	if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", *want) { // [] and nil alike
		t.Errorf("configuration differs from the defaults:\n got %+v\nwant %+v", g, *want)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
