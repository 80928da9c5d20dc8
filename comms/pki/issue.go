package pki

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Kind is what an issued certificate is for.
type Kind int

const (
	// Device is a device's client certificate: common name = device id.
	Device Kind = iota + 1
	// Controller is the fleet controller's client certificate: common
	// name = the name the broker's access list grants all topics to.
	Controller
	// Server is the broker's server certificate, for its DNS names and IP
	// addresses.
	Server
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Device:
		return "device"
	case Controller:
		return "controller"
	case Server:
		return "server"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Request is what to issue. Kind and Name are required.
type Request struct {
	Kind Kind
	// Name is the common name: the device id (1 to 128 of A-Z a-z 0-9 .
	// _ -), the controller's name (the same characters), or the broker's
	// first DNS name or IP address.
	Name string
	// Hosts are more DNS names and IP addresses of a Server; the
	// certificate holds Name and Hosts. Only for Server.
	Hosts []string
	// PublicKey is the key to certify (from a signing request); nil makes
	// a new P-256 key, returned in Issued.Key.
	PublicKey crypto.PublicKey
	// Validity is how long the certificate lasts; 0 = DefaultValidity. It
	// may not end after the CA certificate.
	Validity time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Rand is the source of randomness; nil = crypto/rand.
	Rand io.Reader
}

// Issued is a certificate the CA issued, with its key when the CA made it.
type Issued struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer // nil when the request brought its public key
	KeyPEM  []byte        // nil when the request brought its public key
}

// Issue signs a certificate as r asks, and checks that it verifies
// against the CA for its purpose before returning it. A server name the
// CA is not constrained to, or a client name a broker would take for a
// host name outside those constraints, is refused.
func (ca *CA) Issue(r Request) (*Issued, error) {
	what := fmt.Sprintf("issue a %s certificate for %q", r.Kind, r.Name)
	if r.Validity == 0 {
		r.Validity = DefaultValidity
	}
	if r.Validity < 0 {
		return nil, fmt.Errorf("%s: validity must be positive", what)
	}
	now := clock(r.Now)()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: r.Name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(r.Validity),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	switch r.Kind {
	case Device, Controller:
		if !identityPattern.MatchString(r.Name) {
			return nil, fmt.Errorf("%s: the name must be 1 to 128 of A-Z a-z 0-9 . _ -", what)
		}
		if len(r.Hosts) > 0 {
			return nil, fmt.Errorf("%s: a client certificate holds no host names", what)
		}
		if err := ca.checkClientName(r.Name); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case Server:
		dnsNames, ips, err := splitHosts(append([]string{r.Name}, r.Hosts...))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		tmpl.DNSNames, tmpl.IPAddresses = dnsNames, ips
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	default:
		return nil, fmt.Errorf("%s: unknown kind", what)
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		days := int(ca.Cert.NotAfter.Sub(now).Hours() / 24)
		return nil, fmt.Errorf("%s: it would end on %s, after the CA certificate (%s); at most %d days",
			what, tmpl.NotAfter.Format(time.DateOnly), ca.Cert.NotAfter.Format(time.DateOnly), days)
	}
	if now.Before(ca.Cert.NotBefore) {
		return nil, fmt.Errorf("%s: the CA certificate is not valid before %s: is this machine's clock right?", what, ca.Cert.NotBefore.Format(time.RFC3339))
	}

	out := &Issued{}
	pub := r.PublicKey
	if pub == nil {
		key, err := GenerateKey(r.Rand)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if out.KeyPEM, err = MarshalKey(key); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out.Key, pub = key, key.Public()
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // TLS 1.2 RSA key exchange
	}
	sn, err := serialNumber(r.Rand)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	tmpl.SerialNumber = sn
	der, err := x509.CreateCertificate(randOr(r.Rand), tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if out.Cert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := ca.verify(out.Cert, r.Kind, now); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out.CertPEM = EncodeCertificate(der)
	return out, nil
}

// verify checks cert against the CA for its purpose, every name of a
// server certificate included: a name outside the CA's constraints fails.
func (ca *CA) verify(cert *x509.Certificate, kind Kind, now time.Time) error {
	usage := x509.ExtKeyUsageClientAuth
	if kind == Server {
		usage = x509.ExtKeyUsageServerAuth
	}
	opts := x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}
	if _, err := cert.Verify(opts); err != nil {
		return fmt.Errorf("the certificate would not verify against the CA (is every name one the CA was made for: %s?): %w",
			strings.Join(ca.PermittedNames(), ", "), err)
	}
	return nil
}

// PermittedNames lists the DNS names and IP addresses the CA is
// constrained to.
func (ca *CA) PermittedNames() []string {
	names := append([]string(nil), ca.Cert.PermittedDNSDomains...)
	for _, r := range ca.Cert.PermittedIPRanges {
		names = append(names, r.IP.String())
	}
	return names
}

// checkClientName refuses a client name that OpenSSL-based brokers
// (mosquitto among them) would check as a host name against the CA's name
// constraints and refuse: OpenSSL treats the common name of a certificate
// without DNS names as one when it has at least two labels of letters,
// digits and hyphens ("pos.12"). Such a name within the permitted names,
// and any name of a CA without DNS constraints, is fine.
func (ca *CA) checkClientName(name string) error {
	if len(ca.Cert.PermittedDNSDomains) == 0 || !strings.Contains(name, ".") || !isDNSName(name) {
		return nil
	}
	lower := strings.ToLower(name)
	for _, d := range ca.Cert.PermittedDNSDomains {
		d = strings.ToLower(strings.TrimPrefix(d, "."))
		if lower == d || strings.HasSuffix(lower, "."+d) {
			return nil
		}
	}
	return errors.New("OpenSSL-based brokers such as mosquitto read a dotted name like this as a host name and would " +
		"refuse it, since the CA may only vouch for " + strings.Join(ca.PermittedNames(), ", ") +
		"; use a device id without dots (or with an underscore), or a CA of your own without name constraints")
}
