package provision

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/comms/pki"
	"github.com/keystone-edge/keystone/ota/sign"
)

// Options say what to provision. Root, DeviceID, Broker, BrokerCA, one of
// CertFile+KeyFile or CA, and — unless none is used — Repository with
// TUFRoot are required; the others may be left zero.
type Options struct {
	// Root is the root folder: "/" for the live system, or an image's.
	Root string
	// DeviceID is the device's id (agent.toml device_id, the certificate's
	// common name).
	DeviceID string
	// Groups are the device's fleet groups. Nil: none.
	Groups []string
	// Broker is the MQTT broker's mqtts:// URL.
	Broker string
	// BrokerCA is a PEM file of the CA(s) the broker's certificate is
	// checked against, copied to /etc/keystone/ca.pem.
	BrokerCA string
	// Repository is the component repository's https:// URL; "" leaves
	// the device without one (recipes must come with each deployment).
	Repository string
	// TUFRoot is the repository's root.json, copied to
	// /etc/keystone/tuf/root.json; required with Repository.
	TUFRoot string
	// RepositoryCA is a PEM CA bundle for the repository's https (an
	// in-house CA), copied to /etc/keystone/repository-ca.pem and named by
	// artifacts.ca_file. "": the system's roots.
	RepositoryCA string
	// TrustKeys are ed25519 public key files (keystonectl keys generate)
	// whose signatures on recipes and jobs the device trusts, copied to
	// /etc/keystone/trust/ under their file names.
	TrustKeys []string
	// CertFile and KeyFile are a device certificate and key made
	// elsewhere (another CA, or enroll on the device: then KeyFile is the
	// device's own /etc/keystone/device.key and stays where it is).
	CertFile, KeyFile string
	// CA issues the device's certificate and a new key instead; the key is
	// written only into the root folder.
	CA *pki.CA
	// Validity is how long a certificate CA issues lasts; 0 = the CA's
	// default.
	Validity time.Duration
	// HTTPListen, when not nil, is written as api.http_listen ("" turns
	// the metrics listener off). Nil: the agent's default.
	HTTPListen *string
	// Force replaces an existing identity (device key, certificate or
	// agent.toml). Without it Provision refuses and changes nothing.
	Force bool
	// Now is the clock certificates are issued at; nil = time.Now.
	Now func() time.Time
}

// File is one thing Provision wrote, as it is on the device.
type File struct {
	Path  string      `json:"path"` // absolute on the device
	Mode  fs.FileMode `json:"-"`
	Owner string      `json:"owner"` // user:group
	Kept  bool        `json:"kept"`  // already in place (an enrolled key); only its mode and owner were set
}

// Result is what Provision did.
type Result struct {
	Files []File
	// Certificate is the device certificate written.
	Certificate *x509.Certificate
	// Warnings are facts worth telling that did not stop provisioning.
	Warnings []string
}

// ErrExists is returned when the root folder already holds an identity
// and Options.Force is not set.
var ErrExists = errors.New("the device is provisioned already")

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// item is one file to write.
type item struct {
	dev   string // path on the device
	data  []byte
	mode  fs.FileMode
	owned bool // by the keystone account, else root
	keep  bool // the file is there already (enrolled key): set mode and owner only
}

// Provision checks o and everything it names, then writes the device's
// files into o.Root. Nothing is written when a check fails.
func Provision(o Options) (*Result, error) {
	if o.Root == "" {
		return nil, errors.New("provision: no root folder")
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	if info, err := os.Stat(root); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("provision: the root folder %s is not a folder: %v", root, err)
	}
	acct, err := LookupAccount(root, AccountName, AccountName)
	if err != nil {
		return nil, fmt.Errorf("provision: the root folder %s has no %s account (%w): install the keystone package "+
			"into it first (it creates the user and group), or add them", root, AccountName, err)
	}
	res := &Result{}
	items, err := o.plan(root, res)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", o.DeviceID, err)
	}
	if err := checkInside(root, items); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	if !o.Force {
		var there []string
		for _, it := range items {
			if it.keep || !slices.Contains([]string{KeyFile, CertFile, ConfigFile}, it.dev) {
				continue
			}
			if _, err := os.Lstat(inRoot(root, it.dev)); err == nil {
				there = append(there, it.dev)
			}
		}
		if len(there) > 0 {
			return nil, fmt.Errorf("provision: %w: %s holds %s; use --force to replace them",
				ErrExists, root, strings.Join(there, ", "))
		}
	}
	if err := write(root, acct, items, res); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return res, nil
}

// plan checks the options and the files they name, and returns every
// file to write.
func (o Options) plan(root string, res *Result) ([]item, error) {
	if !idPattern.MatchString(o.DeviceID) {
		return nil, fmt.Errorf("device id %q must be 1 to 128 of A-Z a-z 0-9 . _ -", o.DeviceID)
	}
	u, err := url.Parse(o.Broker)
	if err != nil || u.Scheme != "mqtts" || u.Hostname() == "" {
		return nil, fmt.Errorf("broker %q must be an mqtts://host:port URL", o.Broker)
	}
	var items []item
	add := func(dev string, data []byte, mode fs.FileMode, owned bool) {
		items = append(items, item{dev: dev, data: data, mode: mode, owned: owned})
	}

	caPEM, err := readPEMCerts(o.BrokerCA)
	if err != nil {
		return nil, fmt.Errorf("broker CA: %w", err)
	}
	add(BrokerCAFile, caPEM, modePublic, false)

	keyItem, certPEM, err := o.identity(root, res)
	if err != nil {
		return nil, err
	}
	items = append(items, keyItem)
	add(CertFile, certPEM, modePublic, false)

	var keyPaths []string
	seen := map[string]string{}
	for _, k := range o.TrustKeys {
		if _, err := sign.LoadPublicKey(k); err != nil {
			return nil, fmt.Errorf("trust key: %w", err)
		}
		name := filepath.Base(k)
		if !strings.HasSuffix(name, ".pub") {
			name += ".pub"
		}
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("trust keys %s and %s have the same file name %s", prev, k, name)
		}
		seen[name] = k
		data, err := os.ReadFile(k)
		if err != nil {
			return nil, fmt.Errorf("trust key: %w", err)
		}
		add(path.Join(TrustDir, name), data, modePublic, false)
		keyPaths = append(keyPaths, relConfig(path.Join(TrustDir, name)))
	}
	if len(o.TrustKeys) == 0 {
		res.Warnings = append(res.Warnings, "no --trust-key: the device trusts no key, so it refuses every signed job and recipe")
	}

	switch {
	case o.Repository == "" && o.TUFRoot != "":
		return nil, errors.New("a TUF root without a repository URL")
	case o.Repository != "":
		if o.TUFRoot == "" {
			return nil, errors.New("the repository needs its TUF root (root.json) as the device's trust anchor")
		}
		data, err := checkTUFRoot(o.TUFRoot)
		if err != nil {
			return nil, err
		}
		add(TUFRootFile, data, modePublic, false)
	}
	if o.RepositoryCA != "" {
		data, err := readPEMCerts(o.RepositoryCA)
		if err != nil {
			return nil, fmt.Errorf("repository CA: %w", err)
		}
		add(RepositoryCAFile, data, modePublic, false)
	}

	text, err := o.agentTOML(keyPaths)
	if err != nil {
		return nil, err
	}
	// The agent's own validation, on the file as it will be read.
	if _, err := config.Parse(ConfigFile, text); err != nil {
		return nil, fmt.Errorf("the agent.toml made would not load: %w", err)
	}
	add(ConfigFile, text, modePublic, false)
	return items, nil
}

// identity returns the device key to write (or keep) and the certificate.
func (o Options) identity(root string, res *Result) (item, []byte, error) {
	keyItem := item{dev: KeyFile, mode: modeKey, owned: true}
	switch {
	case o.CA != nil && (o.CertFile != "" || o.KeyFile != ""):
		return keyItem, nil, errors.New("give either a certificate and key, or a CA to issue them, not both")
	case o.CA != nil:
		issued, err := o.CA.Issue(pki.Request{Kind: pki.Device, Name: o.DeviceID, Validity: o.Validity, Now: o.Now})
		if err != nil {
			return keyItem, nil, err
		}
		keyItem.data, res.Certificate = issued.KeyPEM, issued.Cert
		return keyItem, issued.CertPEM, nil
	case o.CertFile == "" || o.KeyFile == "":
		return keyItem, nil, errors.New("the device needs a certificate and key (--cert and --key), or a CA to issue them (--ca)")
	}
	certPEM, err := os.ReadFile(o.CertFile)
	if err != nil {
		return keyItem, nil, fmt.Errorf("device certificate: %w", err)
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return keyItem, nil, fmt.Errorf("device certificate %s: %w", o.CertFile, err)
	}
	key, err := pki.LoadKey(o.KeyFile)
	if err != nil {
		return keyItem, nil, fmt.Errorf("device key: %w", err)
	}
	if !pki.SamePublicKey(cert, key) {
		return keyItem, nil, fmt.Errorf("the certificate %s is not for the key %s", o.CertFile, o.KeyFile)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if t := now(); t.After(cert.NotAfter) {
		return keyItem, nil, fmt.Errorf("the certificate %s expired on %s", o.CertFile, cert.NotAfter.Format(time.DateOnly))
	}
	if cert.Subject.CommonName != o.DeviceID {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the certificate's common name is %q, not the device id %q: "+
			"a broker that pins devices to their topics by common name will not let this device use its own", cert.Subject.CommonName, o.DeviceID))
	}
	if len(cert.ExtKeyUsage) > 0 && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return keyItem, nil, fmt.Errorf("the certificate %s is not for client authentication (extended key usage)", o.CertFile)
	}
	res.Certificate = cert
	if same(o.KeyFile, inRoot(root, KeyFile)) {
		keyItem.keep = true // enrolled on the device: the key stays where it was made
		return keyItem, certPEM, nil
	}
	if keyItem.data, err = os.ReadFile(o.KeyFile); err != nil {
		return keyItem, nil, fmt.Errorf("device key: %w", err)
	}
	return keyItem, certPEM, nil
}

// agentFile is the agent.toml Provision writes.
type agentFile struct {
	DeviceID     string     `toml:"device_id"`
	Groups       []string   `toml:"groups,omitempty"`
	DefaultRunAs string     `toml:"default_run_as"`
	API          *apiTable  `toml:"api,omitempty"`
	MQTT         mqttTable  `toml:"mqtt"`
	Trust        trustTable `toml:"trust"`
	Artifacts    *artTable  `toml:"artifacts,omitempty"`
}

type apiTable struct {
	HTTPListen string `toml:"http_listen"`
}

type mqttTable struct {
	Broker   string `toml:"broker"`
	CAFile   string `toml:"ca_file"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

type trustTable struct {
	Keys       []string `toml:"keys"`
	TUFRoot    string   `toml:"tuf_root,omitempty"`
	Repository string   `toml:"repository,omitempty"`
}

type artTable struct {
	CAFile string `toml:"ca_file"`
}

const configHeader = `# The agent's configuration, written by keystonectl device provision.
# Relative paths are relative to this file's folder (/etc/keystone).
# Every key is described in docs/configuration.md.

`

func (o Options) agentTOML(keyPaths []string) ([]byte, error) {
	f := agentFile{
		DeviceID:     o.DeviceID,
		Groups:       o.Groups,
		DefaultRunAs: AccountName + ":" + AccountName,
		MQTT: mqttTable{Broker: o.Broker, CAFile: relConfig(BrokerCAFile),
			CertFile: relConfig(CertFile), KeyFile: relConfig(KeyFile)},
		Trust: trustTable{Keys: keyPaths, Repository: o.Repository},
	}
	if f.Trust.Keys == nil {
		f.Trust.Keys = []string{}
	}
	if o.Repository != "" {
		f.Trust.TUFRoot = relConfig(TUFRootFile)
	}
	if o.HTTPListen != nil {
		f.API = &apiTable{HTTPListen: *o.HTTPListen}
	}
	if o.RepositoryCA != "" {
		f.Artifacts = &artTable{CAFile: relConfig(RepositoryCAFile)}
	}
	var buf bytes.Buffer
	buf.WriteString(configHeader)
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(false)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("write agent.toml: %w", err)
	}
	return buf.Bytes(), nil
}

// relConfig is a device path as agent.toml names it: relative to its folder.
func relConfig(dev string) string {
	return strings.TrimPrefix(dev, ConfigDir+"/")
}

// readPEMCerts reads a file that must hold at least one PEM certificate.
func readPEMCerts(p string) ([]byte, error) {
	if p == "" {
		return nil, errors.New("no file given")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", p)
	}
	return data, nil
}

// checkTUFRoot reads a TUF root.json and checks that its own keys sign it.
func checkTUFRoot(p string) ([]byte, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("TUF root: %w", err)
	}
	if err := VerifyTUFRoot(data); err != nil {
		return nil, fmt.Errorf("TUF root %s: %w", p, err)
	}
	return data, nil
}

// VerifyTUFRoot checks that data is TUF root metadata signed by the
// threshold of its own root keys. Its expiry is not checked: a device
// with an expired root still updates to the repository's newer root.
func VerifyTUFRoot(data []byte) error {
	root, err := metadata.Root().FromBytes(data)
	if err != nil {
		return fmt.Errorf("not TUF root metadata: %w", err)
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return fmt.Errorf("not signed by its own root keys: %w", err)
	}
	return nil
}

func inRoot(root, dev string) string { return filepath.Join(root, filepath.FromSlash(dev)) }

func same(a, b string) bool {
	ia, err := os.Stat(a)
	if err != nil {
		return false
	}
	ib, err := os.Stat(b)
	return err == nil && os.SameFile(ia, ib)
}
