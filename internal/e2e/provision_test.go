package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// The image's keystone account: ids this host does not give keystone.
const imageUID, imageGID = 4321, 4322

// Acceptance: from factory to field. A CA made with keystonectl ca init
// signs the broker's certificate and the controller's; an image root
// folder (its own etc/passwd and etc/group) is provisioned offline with
// keystonectl device provision; the agent then starts from that root's
// files — agent.toml unchanged; only data_dir and the socket, which point
// at /var and /run, are given as flags — connects to mosquitto with mTLS,
// and appears in keystonectl fleet devices with its groups.
func TestFactoryToField(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: provisioning sets file owners and the agent runs as root; run the tests as root")
	}
	work := t.TempDir()
	ca := filepath.Join(work, "ca")
	certs := filepath.Join(work, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	ok := func(args ...string) result {
		t.Helper()
		r := runCtl(t, args...)
		if r.code != 0 {
			t.Fatalf("keystonectl %s: %s", strings.Join(args, " "), r)
		}
		return r
	}

	// The operator's side: CA, broker and controller certificates, ops key.
	ok("ca", "init", ca, "--broker-name", "127.0.0.1,localhost")
	ok("ca", "issue", ca, "--server", "127.0.0.1", "--host", "localhost", "--out", certs)
	ok("ca", "issue", ca, "--controller", mqtttest.DefaultController, "--out", certs)
	ok("keys", "generate", "--out", filepath.Join(work, "ops"))
	b := mqtttest.Start(t, mqtttest.Options{Kind: mqtttest.KindMosquitto,
		CA:             mqtttest.LoadCA(t, "factory", filepath.Join(ca, "ca.pem"), filepath.Join(ca, "ca.key")),
		ServerCertFile: filepath.Join(certs, "127.0.0.1.pem"), ServerKeyFile: filepath.Join(certs, "127.0.0.1.key")})

	repoDir := t.TempDir()
	if err := tufrepo.Init(repoDir, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	repo := httptest.NewTLSServer(http.FileServer(http.Dir(tufrepo.ServedDir(repoDir))))
	t.Cleanup(repo.Close)
	repoCA := filepath.Join(work, "repo-ca.pem")
	if err := os.WriteFile(repoCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: repo.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	// The image, provisioned offline.
	img := filepath.Join(work, "image")
	if err := os.MkdirAll(filepath.Join(img, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0::/root:/bin/sh\nkeystone:x:%d:%d::/var/lib/keystone:/usr/sbin/nologin\n", imageUID, imageGID),
		"group":  fmt.Sprintf("root:x:0:\nkeystone:x:%d:\n", imageGID),
	} {
		if err := os.WriteFile(filepath.Join(img, "etc", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const id = "factory-1"
	ok("device", "provision", "--root", img, "--device-id", id, "--groups", "canary,kyiv",
		"--broker", b.URL, "--ca-cert", filepath.Join(ca, "ca.pem"), "--ca", ca,
		"--repository", repo.URL+"/", "--tuf-root", tufrepo.RootFile(repoDir), "--repository-ca", repoCA,
		"--trust-key", filepath.Join(work, "ops.pub"), "--http-listen", "")

	for _, f := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{"etc/keystone/device.key", 0o600, imageUID, imageGID},
		{"etc/keystone/device.pem", 0o644, 0, 0},
		{"etc/keystone/ca.pem", 0o644, 0, 0},
		{"etc/keystone/agent.toml", 0o644, 0, 0},
		{"etc/keystone/trust/ops.pub", 0o644, 0, 0},
		{"etc/keystone/tuf/root.json", 0o644, 0, 0},
		{"var/lib/keystone", 0o750, imageUID, imageGID},
	} {
		info, err := os.Stat(filepath.Join(img, f.path))
		if err != nil {
			t.Error(err)
			continue
		}
		st := info.Sys().(*syscall.Stat_t)
		if info.Mode().Perm() != f.mode || int(st.Uid) != f.uid || int(st.Gid) != f.gid {
			t.Errorf("/%s: mode %04o owner %d:%d; want %04o %d:%d", f.path, info.Mode().Perm(), st.Uid, st.Gid, f.mode, f.uid, f.gid)
		}
	}
	cfgPath := filepath.Join(img, "etc", "keystone", "agent.toml")
	if _, err := config.Load(cfgPath); err != nil {
		t.Fatalf("the provisioned agent.toml does not load: %v", err)
	}
	if r := ok("doctor", "--root", img); !strings.Contains(r.stdout, "broker") {
		t.Errorf("doctor on the image: %s", r)
	}

	// First boot: the agent from the image's files.
	sockDir, err := os.MkdirTemp("", "ks-prov-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	logPath := filepath.Join(work, "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(built.agent, "run", "--config", cfgPath,
		"--data-dir", filepath.Join(img, "var", "lib", "keystone"), "--socket", filepath.Join(sockDir, "agent.sock"))
	agent.Stdout, agent.Stderr = logFile, logFile
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	logFile.Close()
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopDeadline):
			_ = agent.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", tail(logPath, 60))
		}
	})

	// The operator's view: fleet serve records the retained state.
	fleetCfg := filepath.Join(work, "fleet.toml")
	text := fmt.Sprintf("broker = %q\nca_file = %q\ncert_file = %q\nkey_file = %q\nstate = %q\nsign_key = %q\n",
		b.URL, filepath.Join(ca, "ca.pem"), filepath.Join(certs, mqtttest.DefaultController+".pem"),
		filepath.Join(certs, mqtttest.DefaultController+".key"), filepath.Join(work, "fleet.db"), filepath.Join(work, "ops.key"))
	if err := os.WriteFile(fleetCfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := (&rollout{t: t, fleetCfg: fleetCfg}).startServe()
	t.Cleanup(func() { serve.stop(t) })

	deadline := time.Now().Add(startDeadline)
	var last result
	for {
		last = runCtl(t, "-o", "json", "fleet", "--config", fleetCfg, "devices", "--group", "kyiv")
		var devs []message.State
		if last.code == 0 && json.Unmarshal([]byte(last.stdout), &devs) == nil {
			i := slices.IndexFunc(devs, func(s message.State) bool { return s.DeviceID == id })
			if i >= 0 && devs[i].Online && slices.Equal(devs[i].Groups, []string{"canary", "kyiv"}) {
				t.Logf("fleet devices: %s", strings.TrimSpace(runCtl(t, "fleet", "--config", fleetCfg, "devices").stdout))
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("the agent exited: %v\n%s", err, tail(logPath, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear online in fleet devices within %s: %s\nfleet serve:\n%s", id, startDeadline, last, tail(serve.log, 20))
		}
		time.Sleep(pollEvery)
	}
}
