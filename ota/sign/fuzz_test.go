package sign_test

import (
	"bytes"
	"testing"

	"github.com/keystone-edge/keystone/ota/sign"
)

// FuzzCanonicalJSON checks that any input either is refused or has a
// canonical form that is its own canonical form, so signer and verifier
// agree however often a document is re-encoded.
func FuzzCanonicalJSON(f *testing.F) {
	for _, seed := range []string{jobDoc, `{}`, `{"a":[1,2.50,{"b":null}],"signature":{}}`, `{"a":"\u00e9<>&"}`, `{"a":1,"a":2}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		canon, err := sign.CanonicalJSON(doc)
		if err != nil {
			return
		}
		again, err := sign.CanonicalJSON(canon)
		if err != nil {
			t.Fatalf("canonical form %s refused: %v", canon, err)
		}
		if !bytes.Equal(canon, again) {
			t.Fatalf("not idempotent:\n%s\n%s", canon, again)
		}
	})
}
