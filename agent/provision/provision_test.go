package provision

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/comms/pki"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// The image's keystone account: ids no host is likely to have for it.
const imageUID, imageGID = 4321, 4322

// fixture is what provisioning takes: a fake image root with its own
// account files, a CA, a TUF repository and an ops key.
type fixture struct {
	root, tufRoot, opsPub string
	ca                    *pki.CA
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir()}
	MakeImageRoot(t, f.root, imageUID, imageGID)
	var err error
	if f.ca, err = pki.Init(filepath.Join(t.TempDir(), "ca"), pki.InitOptions{BrokerNames: []string{"broker.example"}}); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := tufrepo.Init(repo, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	f.tufRoot = tufrepo.RootFile(repo)
	pub, priv, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, f.opsPub, err = sign.WriteKeyPair(filepath.Join(t.TempDir(), "ops"), pub, priv); err != nil {
		t.Fatal(err)
	}
	return f
}

// MakeImageRoot writes etc/passwd and etc/group of an image with a
// keystone account of the given ids.
func MakeImageRoot(t *testing.T, root string, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nkeystone:x:" + strconv.Itoa(uid) + ":" + strconv.Itoa(gid) + ":KeyStone:/var/lib/keystone:/usr/sbin/nologin\n"
	group := "root:x:0:\nkeystone:x:" + strconv.Itoa(gid) + ":\n"
	for name, text := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) options() Options {
	return Options{Root: f.root, DeviceID: "pos-12", Groups: []string{"canary", "kyiv"},
		Broker: "mqtts://broker.example:8883", BrokerCA: filepath.Join(f.ca.Dir, pki.CACertFile),
		Repository: "https://repo.example/keystone/", TUFRoot: f.tufRoot, TrustKeys: []string{f.opsPub}, CA: f.ca}
}

// wantFile checks a file's mode and, as root, its owner.
func wantFile(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if info.Mode().Perm() != mode {
		t.Errorf("%s: mode %04o, want %04o", path, info.Mode().Perm(), mode)
	}
	if os.Geteuid() != 0 {
		return // ownership is checked by the root run; see requireRoot
	}
	st := info.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", path, st.Uid, st.Gid, uid, gid)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: provisioning sets file owners, which needs root; run the tests as root")
	}
}

// An image root provisioned offline: every file in place with its mode
// and owner (the image's keystone ids, not the host's), and an agent.toml
// the agent's own loader takes, naming the files inside the root.
func TestProvisionAnImageRoot(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	res, err := Provision(f.options())
	if err != nil {
		t.Fatal(err)
	}
	in := func(p string) string { return filepath.Join(f.root, p) }
	wantFile(t, in(KeyFile), 0o600, imageUID, imageGID)
	wantFile(t, in(CertFile), 0o644, 0, 0)
	wantFile(t, in(BrokerCAFile), 0o644, 0, 0)
	wantFile(t, in(ConfigFile), 0o644, 0, 0)
	wantFile(t, in(TUFRootFile), 0o644, 0, 0)
	wantFile(t, in(TrustDir+"/ops.pub"), 0o644, 0, 0)
	wantFile(t, in(DataDir), 0o750, imageUID, imageGID)
	wantFile(t, in(ConfigDir), 0o755, 0, 0)

	cfg, err := config.Load(in(ConfigFile))
	if err != nil {
		t.Fatalf("the agent's loader: %v", err)
	}
	if cfg.DeviceID != "pos-12" || strings.Join(cfg.Groups, ",") != "canary,kyiv" || cfg.MQTT.Broker != "mqtts://broker.example:8883" ||
		cfg.Trust.Repository != "https://repo.example/keystone/" || cfg.DefaultRunAs != "keystone:keystone" {
		t.Errorf("config %+v", cfg)
	}
	for name, p := range map[string]string{"ca_file": cfg.MQTT.CAFile, "cert_file": cfg.MQTT.CertFile, "key_file": cfg.MQTT.KeyFile,
		"tuf_root": cfg.Trust.TUFRoot, "keys[0]": cfg.Trust.Keys[0]} {
		if !strings.HasPrefix(p, f.root+"/etc/keystone/") {
			t.Errorf("%s = %s: not inside the root's /etc/keystone", name, p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	cert, err := pki.LoadCertificate(cfg.MQTT.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.LoadKey(cfg.MQTT.KeyFile)
	if err != nil || !pki.SamePublicKey(cert, key) || cert.Subject.CommonName != "pos-12" {
		t.Errorf("device identity: CN %q, key %v", cert.Subject.CommonName, err)
	}
	if res.Certificate == nil || !res.Certificate.Equal(cert) || len(res.Warnings) != 0 {
		t.Errorf("result %+v", res)
	}

	// A second run refuses, naming what is there, and changes nothing.
	before, _ := os.ReadFile(in(KeyFile))
	_, err = Provision(f.options())
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), KeyFile) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second provision: %v", err)
	}
	if after, _ := os.ReadFile(in(KeyFile)); string(after) != string(before) {
		t.Error("the refused run changed the key")
	}
	o := f.options()
	o.Force = true
	if _, err := Provision(o); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if after, _ := os.ReadFile(in(KeyFile)); string(after) == string(before) {
		t.Error("--force kept the old key")
	}
	wantFile(t, in(KeyFile), 0o600, imageUID, imageGID)
}

func TestProvisionRefusesAnImageWithoutTheAccount(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Provision(f.options())
	if !errors.Is(err, ErrNoAccount) || !strings.Contains(err.Error(), "install the keystone package") {
		t.Errorf("no keystone user: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.root, "etc", "keystone")); err == nil {
		t.Error("something was written")
	}
}

// A root whose etc/keystone is a link to a folder outside it is refused:
// provisioning an image must never write the host's files.
func TestProvisionRefusesALinkOutOfTheRoot(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(f.root, "etc", "keystone")); err != nil {
		t.Fatal(err)
	}
	_, err := Provision(f.options())
	if err == nil || !strings.Contains(err.Error(), "outside the root folder") {
		t.Errorf("etc/keystone -> %s: %v", outside, err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the root: %v", entries)
	}
}

func TestProvisionChecksWhatItIsGiven(t *testing.T) {
	f := newFixture(t)
	other, err := f.ca.Issue(pki.Request{Kind: pki.Device, Name: "pos-12"})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := f.ca.Issue(pki.Request{Kind: pki.Device, Name: "pos-12"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile := write("c.pem", mine.CertPEM, 0o644)
	otherKey := write("other.key", other.KeyPEM, 0o600)
	badRoot := write("root.json", []byte(`{"signed":{"_type":"root"}}`), 0o644)
	for name, tc := range map[string]struct {
		mod  func(*Options)
		says string
	}{
		"key of another certificate":  {func(o *Options) { o.CA, o.CertFile, o.KeyFile = nil, certFile, otherKey }, "is not for the key"},
		"no identity":                 {func(o *Options) { o.CA = nil }, "--cert and --key"},
		"plain broker":                {func(o *Options) { o.Broker = "mqtt://broker.example:1883" }, "mqtts://"},
		"bad device id":               {func(o *Options) { o.DeviceID = "pos 12" }, "device id"},
		"bad group":                   {func(o *Options) { o.Groups = []string{"a b"} }, "groups"},
		"bad TUF root":                {func(o *Options) { o.TUFRoot = badRoot }, "TUF root"},
		"repository without root":     {func(o *Options) { o.TUFRoot = "" }, "TUF root"},
		"broker CA not a certificate": {func(o *Options) { o.BrokerCA = f.opsPub }, "no PEM certificate"},
		"trust key not a key":         {func(o *Options) { o.TrustKeys = []string{certFile} }, "trust key"},
	} {
		o := f.options()
		tc.mod(&o)
		_, err := Provision(o)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v; want an error saying %q", name, err, tc.says)
		}
	}
	if _, err := os.Stat(filepath.Join(f.root, "etc", "keystone", "agent.toml")); err == nil {
		t.Error("a refused run wrote agent.toml")
	}
}

// Enrollment: the key is made on the device and stays there; the CA signs
// the request; provisioning with that certificate keeps the key in place.
func TestEnrollThenProvision(t *testing.T) {
	requireRoot(t)
	f := newFixture(t)
	keyFile := filepath.Join(f.root, "etc", "keystone", "device.key")
	first, err := Enroll(f.root, keyFile, "pos-12")
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || first.Owner != "keystone:keystone" {
		t.Errorf("enroll: %+v", first)
	}
	wantFile(t, keyFile, 0o600, imageUID, imageGID)
	keyBefore, _ := os.ReadFile(keyFile)
	again, err := Enroll(f.root, keyFile, "pos-12")
	if err != nil || again.Created {
		t.Fatalf("second enroll: %+v %v", again, err)
	}
	if after, _ := os.ReadFile(keyFile); string(after) != string(keyBefore) {
		t.Error("a second enroll replaced the key")
	}

	csr, err := pki.ParseCSR(again.CSR, "pos-12")
	if err != nil {
		t.Fatal(err)
	}
	issued, err := f.ca.Issue(pki.Request{Kind: pki.Device, Name: "pos-12", PublicKey: csr.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "pos-12.pem")
	if err := os.WriteFile(certFile, issued.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	o := f.options()
	o.CA, o.CertFile, o.KeyFile = nil, certFile, keyFile
	res, err := Provision(o)
	if err != nil {
		t.Fatalf("provision with the enrolled key: %v", err)
	}
	kept := false
	for _, file := range res.Files {
		kept = kept || file.Path == KeyFile && file.Kept
	}
	if !kept {
		t.Errorf("the enrolled key was not reported kept: %+v", res.Files)
	}
	if after, _ := os.ReadFile(keyFile); string(after) != string(keyBefore) {
		t.Error("provisioning replaced the enrolled key")
	}

	if _, err := Enroll(f.root, keyFile, "pos 12"); err == nil {
		t.Error("enroll took a bad device id")
	}
}

func TestLookupAccountReadsTheRootsFiles(t *testing.T) {
	root := t.TempDir()
	MakeImageRoot(t, root, 777, 778)
	a, err := LookupAccount(root, "keystone", "keystone")
	if err != nil || a.UID != 777 || a.GID != 778 {
		t.Errorf("account %+v, %v", a, err)
	}
	if _, err := LookupAccount(root, "nobody-here", "keystone"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("missing user: %v", err)
	}
	if _, err := LookupAccount(t.TempDir(), "keystone", "keystone"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("no etc/passwd: %v", err)
	}
}
