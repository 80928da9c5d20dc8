package sign_test

import (
	"testing"

	"github.com/keystone-edge/keystone/ota/sign"
)

// BenchmarkVerifyDetached measures checking a detached recipe signature
// against a keyring of three keys, the signer being the last one.
func BenchmarkVerifyDetached(b *testing.B) {
	a, _ := newKey(b)
	c, _ := newKey(b)
	pub, priv := newKey(b)
	ring, err := sign.NewKeyring(a, c, pub)
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(sampleRecipe)
	content := sign.EncodeSignature(sign.Sign(priv, data))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ring.VerifyDetached(data, content); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/verify")
}

// BenchmarkVerifyJSONDocument measures checking a signed job document.
func BenchmarkVerifyJSONDocument(b *testing.B) {
	pub, priv := newKey(b)
	ring, err := sign.NewKeyring(pub)
	if err != nil {
		b.Fatal(err)
	}
	doc, err := sign.SignJSONDocument(priv, jobDoc)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.VerifyJSONDocument(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/verify")
}
