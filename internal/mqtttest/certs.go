package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CA is a certificate authority made for one test. Its files live in the
// folder it was made in.
type CA struct {
	Name string
	File string // its certificate, PEM
	PEM  []byte
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string

	mu     sync.Mutex
	issued int // numbers the files of the identities issued, so none is overwritten
}

// Identity is one TLS client: a certificate whose common name is Name,
// the key that goes with it, and the CA it trusts the broker by.
type Identity struct {
	Name     string // the certificate's common name: the MQTT username the broker sees
	CertFile string // PEM; empty for an identity without a certificate
	KeyFile  string // PEM; empty for an identity without a certificate
	CAFile   string // the CA the client trusts the broker by
	cert     *tls.Certificate
	roots    *x509.CertPool
	// always presents the certificate even when the broker asks for one
	// from other CAs: Go's client would otherwise send none.
	always bool
}

// NewCA makes a CA named name and writes its certificate to dir.
func NewCA(t testing.TB, dir, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"KeyStone tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Name: name, cert: cert, key: key, dir: dir,
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.File = writeFile(t, dir, name+"-ca.pem", ca.PEM)
	return ca
}

// Client issues a client certificate with common name name and returns it
// as an identity that trusts trust (the broker's CA; nil means ca itself).
func (ca *CA) Client(t testing.TB, name string, trust *CA) *Identity {
	t.Helper()
	if trust == nil {
		trust = ca
	}
	certPEM, keyPEM := ca.issue(t, name, false)
	ca.mu.Lock()
	ca.issued++
	base := fmt.Sprintf("%s-%s-%d", ca.Name, name, ca.issued)
	ca.mu.Unlock()
	id := &Identity{Name: name, CAFile: trust.File, roots: trust.pool(),
		CertFile: writeFile(t, ca.dir, base+".pem", certPEM),
		KeyFile:  writeFile(t, ca.dir, base+".key", keyPEM)}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	id.cert = &pair
	return id
}

// server issues the broker's certificate, for 127.0.0.1 and localhost.
func (ca *CA) server(t testing.TB) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, "localhost", true)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, ca.dir, "server.pem", certPEM), writeFile(t, ca.dir, "server.key", keyPEM), pair
}

func (ca *CA) issue(t testing.TB, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issue a certificate for %s: %v", cn, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func (ca *CA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// TLSConfig returns a new client configuration: TLS 1.2 or newer, the
// broker checked against CAFile, and the identity's certificate when it
// has one.
func (id *Identity) TLSConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: id.roots}
	switch {
	case id.cert != nil && id.always:
		cert := id.cert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	case id.cert != nil:
		cfg.Certificates = []tls.Certificate{*id.cert}
	}
	return cfg
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writeFile writes a certificate or key. Keys are 0600 like a real
// device's; the broker reads them as the user that runs the test (or as
// root, see the mosquitto configuration).
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// LoadCA returns the CA whose certificate and key (PEM; the key PKCS#8,
// SEC 1 or PKCS#1, ECDSA) are in certFile and keyFile, such as one made by
// keystonectl ca init, so a broker can trust it (Options.CA). The
// identities it issues are written to a folder of the test's.
func LoadCA(t testing.TB, name, certFile, keyFile string) *CA {
	t.Helper()
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("load CA %s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("load CA %s: %v", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		t.Fatalf("load CA %s: no PEM key", keyFile)
	}
	var key any
	switch kb.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		t.Fatalf("load CA %s: %v", keyFile, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("load CA %s: the key is %T; only ECDSA CAs can be loaded", keyFile, key)
	}
	return &CA{Name: name, File: certFile, PEM: certPEM, cert: cert, key: ec, dir: t.TempDir()}
}

// serverCert is the broker's certificate: the files of Options, or one
// the CA issues.
func (b *Broker) serverCert(t testing.TB) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	if b.opts.ServerCertFile == "" {
		return b.CA.server(t)
	}
	pair, err := tls.LoadX509KeyPair(b.opts.ServerCertFile, b.opts.ServerKeyFile)
	if err != nil {
		t.Fatalf("broker certificate: %v", err)
	}
	return b.opts.ServerCertFile, b.opts.ServerKeyFile, pair
}
