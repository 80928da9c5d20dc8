package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/doctor"
	"github.com/keystone-edge/keystone/comms/pki"
)

func fileMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

// ca init and ca issue: the files, their modes, what -o json says, and
// the refusals.
func TestCAInitAndIssue(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	r := runCLI(t, "-o", "json", "ca", "init", ca, "--broker-name", "broker.example,10.0.0.5")
	r.expect(t, exitOK, []string{`"permitted_names": [`, `"broker.example"`, `"10.0.0.5"`}, none)
	if fileMode(t, filepath.Join(ca, "ca.key")) != 0o600 || fileMode(t, ca) != 0o700 {
		t.Errorf("modes: key %04o folder %04o", fileMode(t, filepath.Join(ca, "ca.key")), fileMode(t, ca))
	}
	runCLI(t, "ca", "init", ca, "--broker-name", "x.example").expect(t, exitError, none, []string{"a CA is there already"})
	runCLI(t, "ca", "init", filepath.Join(dir, "ca2")).expect(t, exitUsage, none, []string{"--broker-name NAME is required"})

	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "-o", "json", "ca", "issue", ca, "--device-id", "pos-12", "--out", out, "--days", "30")
	r.expect(t, exitOK, []string{`"kind": "device"`, `"name": "pos-12"`}, none)
	var got issueResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	cert, err := pki.LoadCertificate(got.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.LoadKey(got.Key)
	if err != nil || !pki.SamePublicKey(cert, key) || cert.Subject.CommonName != "pos-12" {
		t.Errorf("issued pair: %v", err)
	}
	if fileMode(t, got.Key) != 0o600 {
		t.Errorf("key mode %04o", fileMode(t, got.Key))
	}
	if d := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24; d < 30 || d > 31 {
		t.Errorf("--days 30 gave %.1f days", d)
	}
	runCLI(t, "ca", "issue", ca, "--device-id", "pos-12", "--out", out).expect(t, exitError, none, []string{"exists already"})
	runCLI(t, "ca", "issue", ca, "--device-id", "a", "--server", "b").expect(t, exitUsage, none, []string{"exactly one of"})
	runCLI(t, "ca", "issue", ca, "--device-id", "a", "--host", "b").expect(t, exitUsage, none, []string{"--host is for --server"})
	runCLI(t, "ca", "issue", ca, "--server", "www.google.com", "--out", out).expect(t, exitError, none, []string{"broker.example"})
	runCLI(t, "ca", "issue", ca, "--server", "broker.example", "--host", "10.0.0.5", "--out", out).expect(t, exitOK, []string{"server"}, none)
	runCLI(t, "ca", "issue", ca, "--controller", "keystone-controller", "--out", out).expect(t, exitOK, []string{"controller"}, none)

	// A request made on the device: its key is certified, none is made.
	devKey, err := pki.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(devKey, "pos-13")
	if err != nil {
		t.Fatal(err)
	}
	csrFile := filepath.Join(dir, "pos-13.csr")
	if err := os.WriteFile(csrFile, csr, 0o644); err != nil {
		t.Fatal(err)
	}
	runCLI(t, "ca", "issue", ca, "--device-id", "pos-14", "--csr", csrFile, "--out", out).
		expect(t, exitError, none, []string{`is for "pos-13", not "pos-14"`})
	runCLI(t, "ca", "issue", ca, "--device-id", "pos-13", "--csr", csrFile, "--out", out).
		expect(t, exitOK, []string{"(the request's)"}, none)
	if _, err := os.Stat(filepath.Join(out, "pos-13.key")); err == nil {
		t.Error("a key was written for a request")
	}
	c13, err := pki.LoadCertificate(filepath.Join(out, "pos-13.pem"))
	if err != nil || !pki.SamePublicKey(c13, devKey) {
		t.Errorf("the certificate is not for the request's key: %v", err)
	}
}

// device provision from the command line; the full check of what it
// writes is in agent/provision and the e2e suite.
func TestDeviceProvisionCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: provisioning sets file owners, which needs root")
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	runCLI(t, "ca", "init", ca, "--broker-name", "broker.example").expect(t, exitOK, nil, none)
	root := filepath.Join(dir, "img")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("keystone:x:901:902::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("keystone:x:902:\n"), 0o644)
	args := []string{"device", "provision", "--root", root, "--device-id", "pos-12", "--groups", "a,b",
		"--broker", "mqtts://broker.example:8883", "--ca-cert", filepath.Join(ca, "ca.pem"), "--ca", ca}
	r := runCLI(t, append([]string{"-o", "json"}, args...)...)
	r.expect(t, exitOK, []string{`"path": "/etc/keystone/device.key"`, `"mode": "0600"`, `"owner": "keystone:keystone"`}, none)
	var res provisionResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Certificate.Subject != "pos-12" || len(res.Warnings) != 1 {
		t.Errorf("result %+v %v (want one warning: no trust key)", res, err)
	}
	r = runCLI(t, append([]string{"-o", "json"}, args...)...)
	r.expect(t, exitError, []string{`"code": "FAILED"`, "--force"}, []string{"provisioned already"})
	runCLI(t, append(args, "--force")...).expect(t, exitOK, []string{"/etc/keystone/device.key", "0600"}, []string{"warning: no --trust-key"})
	runCLI(t, "device", "provision", "--root", root).expect(t, exitUsage, none, []string{"--device-id is required"})
	runCLI(t, append(args, "--cert", "x")...).expect(t, exitUsage, none, []string{"not both"})
}

// doctor prints every check and exits 1 when one fails; -o json is the
// list with ok.
func TestDoctorCommand(t *testing.T) {
	root := t.TempDir()
	cfgDir := filepath.Join(root, "etc", "keystone")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(text string) {
		if err := os.WriteFile(filepath.Join(cfgDir, "agent.toml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("device_id = \"pos-12\"\ndata_dir = \"/var/lib/keystone\"\n")
	os.MkdirAll(filepath.Join(root, "var", "lib", "keystone"), 0o750)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("keystone:x:0:0::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("keystone:x:0:\n"), 0o644)

	var stdout, stderr bytes.Buffer
	opts := &options{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}
	code := execute(context.Background(), opts, []string{"-o", "json", "doctor", "--root", root})
	var got doctorResult
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if code != exitOK || !got.OK {
		t.Errorf("a local-only device: exit %d, %s", code, stdout.String())
	}
	statuses := map[string]doctor.Status{}
	for _, c := range got.Checks {
		statuses[c.Name] = c.Status
	}
	if statuses["cgroups"] != doctor.Skip || statuses["systemd"] != doctor.Skip || statuses["broker"] != doctor.Skip || statuses["trust"] != doctor.Warn {
		t.Errorf("statuses %v", statuses)
	}

	write("device_id = \"pos-12\"\nbrokr = 1\n")
	r := runCLI(t, "doctor", "--root", root)
	r.expect(t, exitError, []string{"config", "FAIL", "brokr: unknown key", "fix: correct agent.toml"}, []string{"1 check(s) failed"})
}

func TestVersionCommand(t *testing.T) {
	r := runCLI(t, "-o", "json", "version")
	r.expect(t, exitOK, []string{`"version": "dev"`, `"commit"`, `"build_date"`}, none)
	runCLI(t, "version", "x").expect(t, exitUsage, none, []string{"takes no arguments"})
}

// completion prints scripts that the shells take; the bash one completes
// subcommands through the built binary.
func TestCompletionCommand(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runCLI(t, "completion", shell)
		r.expect(t, exitOK, []string{"keystonectl", "__complete"}, none)
	}
	runCLI(t, "completion").expect(t, exitUsage, none, []string{"bash, zsh or fish"})
	runCLI(t, "completion", "tcsh").expect(t, exitUsage, none, []string{`unknown shell "tcsh"`})

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("SKIPPED, NOT PASSED: no bash to load the script into")
	}
	// The script needs the bash-completion package, as it says.
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Skip("SKIPPED, NOT PASSED: the bash-completion package is not installed (apt-get install bash-completion)")
	}
	bin := buildBinary(t)
	script := filepath.Join(t.TempDir(), "keystonectl.bash")
	if err := os.WriteFile(script, []byte(runCLI(t, "completion", "bash").stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(line string) string {
		t.Helper()
		prog := `source ` + bashCompletion + `; source "$1"; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$COMP_LINE"
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); __start_keystonectl keystonectl; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, "-c", prog, "bash", script, line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr // compopt complains outside a real completion
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, stderr.String())
		}
		return string(out)
	}
	if got := complete("keystonectl ca "); !strings.Contains(got, "init") || !strings.Contains(got, "issue") {
		t.Errorf("keystonectl ca <Tab>: %q", got)
	}
	if got := complete("keystonectl doc"); strings.TrimSpace(got) != "doctor" {
		t.Errorf("keystonectl doc<Tab>: %q", got)
	}
}
