package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms/fleet"
)

func TestFleetDeployFlagsBecomeARollout(t *testing.T) {
	f := deployFlags{targets: []string{"group:pos", "device:pos-1"}, rings: "1%,10%,100%", maxFailure: "5%",
		rate: "2/s", onHalt: "rollback", minExecuted: 5, soak: time.Minute, deviceTimeout: time.Hour}
	cfg, err := f.rolloutConfig("m", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "rollout-20260102-030405" || len(cfg.Rings) != 3 || cfg.Rings[0] != 0.01 || cfg.Rings[2] != 1 ||
		cfg.MaxFailureRate != 0.05 || cfg.Rate != 120 || cfg.OnHalt != "rollback" || cfg.Soak != time.Minute {
		t.Errorf("rollout %+v", cfg)
	}
}

func TestFleetDeployFlagsRefuseBadValues(t *testing.T) {
	good := deployFlags{targets: []string{"group:pos"}, rings: "100%", maxFailure: "5%", rate: "200/m", onHalt: "pause"}
	for name, change := range map[string]func(*deployFlags){
		"no target":      func(f *deployFlags) { f.targets = nil },
		"bad target":     func(f *deployFlags) { f.targets = []string{"pos-1"} },
		"bad ring":       func(f *deployFlags) { f.rings = "10%,abc" },
		"ring over 100":  func(f *deployFlags) { f.rings = "150%" },
		"bad rate unit":  func(f *deployFlags) { f.rate = "5/d" },
		"bad on-halt":    func(f *deployFlags) { f.onHalt = "explode" },
		"negative soak":  func(f *deployFlags) { f.soak = -time.Second },
		"bad fail rate":  func(f *deployFlags) { f.maxFailure = "-1%" },
		"rate below 1/m": func(f *deployFlags) { f.rate = "30/h" },
	} {
		f := good
		change(&f)
		if _, err := f.rolloutConfig("m", time.Now()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := good.rolloutConfig("m", time.Now()); err != nil {
		t.Errorf("good flags refused: %v", err)
	}
}

func TestFleetConfigIsStrict(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "fleet.toml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := "broker = \"mqtts://b:8883\"\nca_file = \"ca\"\ncert_file = \"c\"\nkey_file = \"k\"\nstate = \"s.db\"\nsign_key = \"ops.key\"\n"
	c, err := loadFleetConfig(write(full))
	if err != nil || c.Broker != "mqtts://b:8883" || c.State != "s.db" || c.SignKey != "ops.key" {
		t.Fatalf("config %+v, %v", c, err)
	}
	if _, err := loadFleetConfig(write("brokr = \"x\"\n" + full)); err == nil || !strings.Contains(err.Error(), "unknown key(s): brokr") {
		t.Errorf("misspelt key: %v; want an error naming brokr", err)
	}
	if _, err := loadFleetConfig(write(full + "[extra]\nx = 1\n")); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("unknown table: %v; want an error naming extra", err)
	}
	if _, err := loadFleetConfig(write("broker = \"mqtts://b\"\n")); err == nil || !strings.Contains(err.Error(), "state") {
		t.Errorf("missing keys: %v; want an error naming state", err)
	}
}

// agent-update takes the rollout flags of deploy and makes agent_update
// jobs for VERSION; bad flags and an empty VERSION are usage errors.
func TestFleetAgentUpdateFlagsBecomeARollout(t *testing.T) {
	cmd := newFleetAgentUpdateCmd(&fleetOptions{options: &options{}})
	for _, name := range []string{"target", "rings", "max-failure-rate", "min-executed", "soak", "device-timeout", "rate", "on-halt", "wait", "id"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("agent-update has no --%s", name)
		}
	}
	if cmd.Flags().Lookup("file") != nil {
		t.Error("agent-update takes -f FILE; it has no manifest")
	}
	if err := cmd.ParseFlags([]string{"--target", "group:pos", "--rings", "10%,100%", "--on-halt", "rollback", "--rate", "1/s"}); err != nil {
		t.Fatal(err)
	}
	f := deployFlags{targets: []string{"group:pos"}, rings: "10%,100%", maxFailure: "5%", rate: "1/s", onHalt: "rollback"}
	cfg, err := f.agentUpdateConfig("1.4.0", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Job.Kind != "agent_update" || cfg.Job.Version != "1.4.0" || cfg.Job.Manifest != "" || cfg.Rate != 60 ||
		len(cfg.Rings) != 2 || cfg.OnHalt != "rollback" || cfg.ID != "rollout-20260102-030405" {
		t.Errorf("rollout %+v", cfg)
	}
	if _, err := f.agentUpdateConfig(" ", time.Now()); err == nil {
		t.Error("an empty VERSION was accepted")
	}
	f.targets = nil
	if _, err := f.agentUpdateConfig("1.4.0", time.Now()); err == nil {
		t.Error("no --target was accepted")
	}
}

// fleet status -o json names every field in snake_case.
func TestFleetStatusJSONIsSnakeCase(t *testing.T) {
	var out bytes.Buffer
	o := &options{Output: formatJSON, Out: &out}
	s := fleet.Summary{ID: "r1", Phase: fleet.PhaseHalted, Reason: "too many", Ring: 0,
		Counts:  map[fleet.Outcome]int{fleet.Failed: 1},
		Rings:   []fleet.RingSummary{{Fraction: 1, Devices: 1, Counts: map[fleet.Outcome]int{fleet.Failed: 1}}},
		Failing: []fleet.Failing{{Device: "pos-1", Outcome: fleet.Failed, ErrorCode: "HEALTH_TIMEOUT", Detail: "x"}}}
	if err := renderSummary(o, s); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "phase", "reason", "ring", "counts", "rings", "failing"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %q in %s", k, out.String())
		}
	}
	failing := got["failing"].([]any)[0].(map[string]any)
	ring := got["rings"].([]any)[0].(map[string]any)
	if failing["device_id"] != "pos-1" || failing["error_code"] != "HEALTH_TIMEOUT" || ring["fraction"] != 1.0 || ring["devices"] != 1.0 {
		t.Errorf("json %s", out.String())
	}
	if strings.ContainsAny(strings.Join(keys(got), ""), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		t.Errorf("capitalised keys in %s", out.String())
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
