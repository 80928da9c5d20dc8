package pki

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms"
	"github.com/keystone-edge/keystone/internal/mqtttest"
)

// writeIssued writes an issued certificate and its key for a client.
func writeIssued(t *testing.T, got *Issued, name string) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, got.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, got.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// A real broker takes this CA: its server certificate from Issue, the
// device's client certificate from Issue. With mosquitto (OpenSSL), a
// dotted device id outside the CA's name constraints is refused — what
// Issue's check saves a factory from finding out in the field.
func TestBrokersTakeTheCA(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		ca, err := Init(filepath.Join(t.TempDir(), "ca"), InitOptions{BrokerNames: []string{"localhost", "127.0.0.1", "::1"}})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := ca.Issue(Request{Kind: Server, Name: "127.0.0.1", Hosts: []string{"localhost"}})
		if err != nil {
			t.Fatal(err)
		}
		srvCert, srvKey := writeIssued(t, srv, "broker")
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind,
			CA:             mqtttest.LoadCA(t, "pki", filepath.Join(ca.Dir, CACertFile), filepath.Join(ca.Dir, CAKeyFile)),
			ServerCertFile: srvCert, ServerKeyFile: srvKey})

		dev, err := ca.Issue(Request{Kind: Device, Name: "pos-12"})
		if err != nil {
			t.Fatal(err)
		}
		cert, key := writeIssued(t, dev, "pos-12")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cfg := comms.Config{DeviceID: "pos-12", BrokerURL: b.URL, CAFile: filepath.Join(ca.Dir, CACertFile), CertFile: cert, KeyFile: key}
		if err := comms.CheckBroker(ctx, cfg); err != nil {
			t.Fatalf("device certificate from the CA: %v", err)
		}

		// Bypass Issue's check: what a dotted name outside the constraints
		// gets from the broker.
		dotted := issueUnchecked(t, ca, "store1.pos12")
		cert, key = writeIssued(t, dotted, "dotted")
		cfg = comms.Config{DeviceID: "store1.pos12", BrokerURL: b.URL, CAFile: filepath.Join(ca.Dir, CACertFile), CertFile: cert, KeyFile: key}
		err = comms.CheckBroker(ctx, cfg)
		t.Logf("%s with a dotted common name: %v", kind, err)
		var ce *comms.CheckError
		switch kind {
		case mqtttest.KindMosquitto:
			if !errors.As(err, &ce) || ce.Stage != comms.CheckClientCertificate {
				t.Errorf("mosquitto took a dotted common name outside the CA's constraints (%v): the check in Issue is not needed any more?", err)
			}
		default:
			if err != nil { // Go does not read the common name as a host name
				t.Errorf("mochi: %v", err)
			}
		}
	})
}

// issueUnchecked issues a device certificate without Issue's checks.
func issueUnchecked(t *testing.T, ca *CA, cn string) *Issued {
	t.Helper()
	key, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := serialNumber(nil)
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(nil, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := MarshalKey(key)
	return &Issued{CertPEM: EncodeCertificate(der), KeyPEM: keyPEM, Key: key}
}
