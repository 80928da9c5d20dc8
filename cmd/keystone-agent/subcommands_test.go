package main

import (
	"bytes"
	"crypto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/comms/pki"
)

// runBin runs the built agent with args.
func runBin(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

// config check lists every problem, file:line:col first, and exits 1.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeConfig(t, dir, "")
	code, out, _ := runBin(t, agentBin, "config", "check", "--config", good)
	if code != 0 || !strings.Contains(out, "valid (device bin-test, local-only)") {
		t.Errorf("good config: exit %d: %s", code, out)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("device_id = \"a b\"\nlog_level = \"loud\"\n[mqtt]\nbrokr = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBin(t, agentBin, "config", "check", "--config", bad)
	for _, want := range []string{bad + ":1:1: device_id:", bad + ":2:1: log_level:", "mqtt.brokr: unknown key"} {
		if !strings.Contains(out, want) {
			t.Errorf("problems should contain %q:\n%s", want, out)
		}
	}
	if code != exitError || !strings.Contains(errOut, "3 problem(s)") {
		t.Errorf("bad config: exit %d, stderr %s", code, errOut)
	}
	if code, _, errOut := runBin(t, agentBin, "config", "check"); code != exitUsage || !strings.Contains(errOut, "--config FILE is required") {
		t.Errorf("no --config: exit %d %s", code, errOut)
	}
	if code, _, _ := runBin(t, agentBin, "config", "check", "--config", filepath.Join(dir, "none.toml")); code != exitError {
		t.Errorf("missing file: exit %d", code)
	}
}

// enroll makes the key (0600) and prints a request for it; again, it
// keeps the key.
func TestEnroll(t *testing.T) {
	key := filepath.Join(t.TempDir(), "keystone", "device.key")
	code, csr, errOut := runBin(t, agentBin, "enroll", "--device-id", "pos-12", "--key", key)
	if code != 0 || !strings.Contains(errOut, "made a new key") {
		t.Fatalf("enroll: exit %d %s", code, errOut)
	}
	if info, err := os.Stat(key); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key: %v %v", info, err)
	}
	req, err := pki.ParseCSR([]byte(csr), "pos-12")
	if err != nil {
		t.Fatal(err)
	}
	k, err := pki.LoadKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(req.PublicKey) {
		t.Error("the request is not for the key")
	}
	out := filepath.Join(t.TempDir(), "pos-12.csr")
	code, _, errOut = runBin(t, agentBin, "enroll", "--device-id", "pos-12", "--key", key, "--out", out)
	if code != 0 || !strings.Contains(errOut, "kept the existing key") {
		t.Errorf("second enroll: exit %d %s", code, errOut)
	}
	if data, err := os.ReadFile(out); err != nil || !strings.Contains(string(data), "CERTIFICATE REQUEST") {
		t.Errorf("--out: %v", err)
	}
	if code, _, _ := runBin(t, agentBin, "enroll"); code != exitUsage {
		t.Errorf("no --device-id: exit %d", code)
	}
}

// version shows what the build stamped with -ldflags -X, as make build
// does.
func TestVersionFromLdflags(t *testing.T) {
	code, out, _ := runBin(t, agentBin, "version")
	if code != 0 || !strings.Contains(out, "keystone-agent dev (commit unknown, built unknown") {
		t.Errorf("unstamped: %s", out)
	}
	bin := filepath.Join(t.TempDir(), "keystone-agent")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=1.2.3 -X main.commit=abc1234 -X main.date=2026-11-25T10:00:00Z", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, msg)
	}
	if _, out, _ := runBin(t, bin, "version"); !strings.HasPrefix(out, "keystone-agent 1.2.3 (commit abc1234, built 2026-11-25T10:00:00Z, go") {
		t.Errorf("stamped: %s", out)
	}
}
