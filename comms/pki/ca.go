package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The files of a CA folder.
const (
	CAKeyFile  = "ca.key" // the CA's private key, mode 0600
	CACertFile = "ca.pem" // its self-signed certificate: what brokers and devices trust
)

// Defaults of Init and Issue.
const (
	DefaultCAName     = "KeyStone device CA"
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// DefaultValidity is how long an issued certificate lasts. Nothing
	// renews a device's certificate by itself: it must be issued again
	// before it ends (see enroll), and 5 years outlives most deployments'
	// first hardware refresh without being forever.
	DefaultValidity = 5 * 365 * 24 * time.Hour
	// backdate starts every certificate an hour before it is made, for
	// clocks a little behind.
	backdate = time.Hour
)

// CA is a certificate authority kept in a folder: ca.key and ca.pem.
type CA struct {
	Dir     string            // the folder
	Cert    *x509.Certificate // the CA certificate
	CertPEM []byte            // the CA certificate as written in ca.pem
	key     crypto.Signer
}

// InitOptions shape a new CA. BrokerNames is required; every other zero
// value has the meaning given.
type InitOptions struct {
	// Name is the CA certificate's common name; "" = DefaultCAName.
	Name string
	// BrokerNames are the DNS names and IP addresses the broker is reached
	// by. The CA is constrained to them: it can issue server certificates
	// for these names (and, for a DNS name, the names below it) only.
	BrokerNames []string
	// Validity is how long the CA certificate lasts; 0 = DefaultCAValidity.
	Validity time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Rand is the source of randomness; nil = crypto/rand.
	Rand io.Reader
}

// Init makes a new CA in dir (created with mode 0700 when missing): a
// P-256 key in ca.key (mode 0600) and a self-signed certificate in ca.pem
// that may sign end certificates only (no intermediate CAs), constrained
// to the broker's names. It refuses a folder that already holds a CA.
func Init(dir string, o InitOptions) (*CA, error) {
	if len(o.BrokerNames) == 0 {
		return nil, errors.New("init CA: the broker's DNS names or IP addresses are required: the CA is constrained to them")
	}
	dnsNames, ips, err := splitHosts(o.BrokerNames)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	if o.Name == "" {
		o.Name = DefaultCAName
	}
	if o.Validity == 0 {
		o.Validity = DefaultCAValidity
	}
	if o.Validity < 0 {
		return nil, errors.New("init CA: validity must be positive")
	}
	now := clock(o.Now)()
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("init CA: %s: %w: a CA is there already (keep it, or choose another folder)", p, fs.ErrExist)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	key, err := GenerateKey(o.Rand)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	sn, err := serialNumber(o.Rand)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	var ranges []*net.IPNet
	for _, ip := range ips {
		bits := 8 * len(ip)
		ranges = append(ranges, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
	}
	tmpl := &x509.Certificate{
		SerialNumber:                sn,
		Subject:                     pkix.Name{CommonName: o.Name},
		NotBefore:                   now.Add(-backdate),
		NotAfter:                    now.Add(o.Validity),
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         dnsNames,
		PermittedIPRanges:           ranges,
	}
	der, err := x509.CreateCertificate(randOr(o.Rand), tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	keyPEM, err := MarshalKey(key)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	if err := WriteNew(keyPath, keyPEM, KeyMode); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	certPEM := EncodeCertificate(der)
	if err := WriteNew(certPath, certPEM, CertMode); err != nil {
		return nil, errors.Join(fmt.Errorf("init CA: %w", err), os.Remove(keyPath))
	}
	return &CA{Dir: dir, Cert: cert, CertPEM: certPEM, key: key}, nil
}

// Load opens the CA in dir. Its key must be mode 0600 or stricter, its
// certificate a CA certificate for that key.
func Load(dir string) (*CA, error) {
	key, err := LoadKey(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %w", dir, err)
	}
	certPath := filepath.Join(dir, CACertFile)
	certPEM, _, err := readSmall(certPath)
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %w", dir, err)
	}
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("open CA %s: %s: %w", dir, certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("open CA %s: %s is not a CA certificate", dir, certPath)
	}
	if !SamePublicKey(cert, key) {
		return nil, fmt.Errorf("open CA %s: %s does not belong to %s", dir, CACertFile, CAKeyFile)
	}
	return &CA{Dir: dir, Cert: cert, CertPEM: certPEM, key: key}, nil
}

// Pool returns a pool holding the CA certificate alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

var identityPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// splitHosts sorts broker names into DNS names and IP addresses, refusing
// anything that is neither.
func splitHosts(hosts []string) (dnsNames []string, ips []net.IP, err error) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			ips = append(ips, ip)
			continue
		}
		if !isDNSName(h) {
			return nil, nil, fmt.Errorf("%q is neither a DNS name nor an IP address", h)
		}
		dnsNames = append(dnsNames, strings.ToLower(h))
	}
	return dnsNames, ips, nil
}

// isDNSName reports whether s is a host name of letters, digits and
// hyphens in dot-separated labels.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func serialNumber(random io.Reader) (*big.Int, error) {
	n, err := rand.Int(randOr(random), new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func randOr(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

func clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
