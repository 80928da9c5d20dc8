package pki

import (
	"testing"
)

// ParseCSR takes files from devices: whatever the bytes, it returns a
// checked request or an error, and never panics; a request it accepts has
// the common name asked for and a verified signature.
func FuzzParseCSR(f *testing.F) {
	key, err := GenerateKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	good, err := NewCSR(key, "pos-12")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data, "pos-12")
		if err != nil {
			return
		}
		if csr.Subject.CommonName != "pos-12" || csr.CheckSignature() != nil {
			t.Fatalf("accepted a request for %q whose signature: %v", csr.Subject.CommonName, csr.CheckSignature())
		}
	})
}
