package sign_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/ota/sign"
)

const jobDoc = `{
  "job_id": "j-1",
  "kind": "deployment",
  "created_at": "2026-11-25T10:00:00Z",
  "expires_at": "2026-11-26T10:00:00Z",
  "deployment": {"manifest": "format = 1\n[[components]]\nname = \"a\"\nversion = \">=1.0.0, <2.0.0\"\n"},
  "attempt": 1.0,
  "big": 12345678901234567890
}`

func TestCanonicalJSON(t *testing.T) {
	got, err := sign.CanonicalJSON([]byte(jobDoc))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"attempt":1.0,"big":12345678901234567890,"created_at":"2026-11-25T10:00:00Z",` +
		`"deployment":{"manifest":"format = 1\n[[components]]\nname = \"a\"\nversion = \">=1.0.0, <2.0.0\"\n"},` +
		`"expires_at":"2026-11-26T10:00:00Z","job_id":"j-1","kind":"deployment"}`
	if string(got) != want {
		t.Fatalf("canonical form\n got %s\nwant %s", got, want)
	}

	reordered := `{"kind":"deployment","big":12345678901234567890,"job_id":"j-1","attempt":1.0,` +
		`"signature":{"key_id":"x","sig":"y"},"expires_at":"2026-11-26T10:00:00Z",` +
		`"deployment":{"manifest":"format = 1\n[[components]]\nname = \"a\"\nversion = \">=1.0.0, <2.0.0\"\n"},` +
		"\n\t\"created_at\" : \"2026-11-25T10:00:00Z\"}"
	again, err := sign.CanonicalJSON(reordered)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != want {
		t.Fatalf("key order, white space or signature changed the canonical form:\n got %s\nwant %s", again, want)
	}

	fromMap, err := sign.CanonicalJSON(map[string]any{"b": []any{1, "x<y"}, "a": map[string]any{"d": true, "c": nil}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":{"c":null,"d":true},"b":[1,"x<y"]}`; string(fromMap) != want {
		t.Fatalf("from map: got %s, want %s", fromMap, want)
	}
}

func TestCanonicalJSONRefusesAmbiguousDocuments(t *testing.T) {
	cases := map[string]string{
		"duplicate key":        `{"a":1,"a":2}`,
		"nested duplicate key": `{"a":{"b":1,"b":1}}`,
		"array":                `[1,2]`,
		"string":               `"x"`,
		"trailing data":        `{"a":1} {"b":2}`,
		"truncated":            `{"a":`,
		"empty":                ``,
		"too deep":             `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	}
	for name, doc := range cases {
		if got, err := sign.CanonicalJSON([]byte(doc)); err == nil {
			t.Errorf("%s: canonical form %s, want an error", name, got)
		}
	}
}

func TestSignJSONVerifyJSON(t *testing.T) {
	pub, priv := newKey(t)
	otherPub, _ := newKey(t)

	keyID, sig, err := sign.SignJSON(priv, []byte(jobDoc))
	if err != nil {
		t.Fatal(err)
	}
	if keyID != sign.KeyID(pub) {
		t.Fatalf("key ID = %q, want %q", keyID, sign.KeyID(pub))
	}

	var asMap map[string]any
	dec := json.NewDecoder(strings.NewReader(jobDoc))
	dec.UseNumber()
	if err := dec.Decode(&asMap); err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyJSON(pub, asMap, sig); err != nil {
		t.Fatalf("same document as a map: %v", err)
	}
	if err := sign.VerifyJSON(pub, []byte(jobDoc), sig); err != nil {
		t.Fatalf("same document as text: %v", err)
	}

	tampered := strings.Replace(jobDoc, `"j-1"`, `"j-2"`, 1)
	if err := sign.VerifyJSON(pub, tampered, sig); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("changed job_id: err = %v, want ErrBadSignature", err)
	}
	renumbered := strings.Replace(jobDoc, `1.0`, `1`, 1)
	if err := sign.VerifyJSON(pub, renumbered, sig); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("number rewritten: err = %v, want ErrBadSignature", err)
	}
	if err := sign.VerifyJSON(otherPub, jobDoc, sig); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("other key: err = %v, want ErrBadSignature", err)
	}
	if err := sign.VerifyJSON(pub, jobDoc, ""); !errors.Is(err, sign.ErrNoSignature) {
		t.Fatalf("empty signature: err = %v, want ErrNoSignature", err)
	}
	if err := sign.VerifyJSON(pub, jobDoc, "%%%"); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("non-base64 signature: err = %v, want ErrBadSignature", err)
	}
	if _, _, err := sign.SignJSON(priv[:1], jobDoc); err == nil {
		t.Fatal("SignJSON with a 1-byte key succeeded")
	}
}

func TestKeyringVerifyJSONDocument(t *testing.T) {
	pub, priv := newKey(t)
	_, strangerPriv := newKey(t)
	ring := mustKeyring(t, pub)

	signed, err := sign.SignJSONDocument(priv, jobDoc)
	if err != nil {
		t.Fatal(err)
	}
	var member struct {
		Signature sign.JSONSignature `json:"signature"`
	}
	if err := json.Unmarshal(signed, &member); err != nil {
		t.Fatal(err)
	}
	if member.Signature.KeyID != sign.KeyID(pub) || member.Signature.Sig == "" {
		t.Fatalf("signature member = %+v", member.Signature)
	}
	keyID, err := ring.VerifyJSONDocument(signed)
	if err != nil {
		t.Fatalf("valid document: %v", err)
	}
	if keyID != sign.KeyID(pub) {
		t.Fatalf("key ID = %q, want %q", keyID, sign.KeyID(pub))
	}

	// Re-signing replaces the old signature member instead of covering it.
	resigned, err := sign.SignJSONDocument(priv, signed)
	if err != nil {
		t.Fatal(err)
	}
	if string(resigned) != string(signed) {
		t.Fatalf("re-signing changed the document:\n%s\n%s", signed, resigned)
	}

	byStranger, err := sign.SignJSONDocument(strangerPriv, jobDoc)
	if err != nil {
		t.Fatal(err)
	}
	// A stranger's signature presented under the trusted key's ID.
	var forgedDoc map[string]any
	if err := json.Unmarshal(byStranger, &forgedDoc); err != nil {
		t.Fatal(err)
	}
	strangerSig := forgedDoc["signature"].(map[string]any)
	strangerID := strangerSig["key_id"].(string)
	strangerSig["key_id"] = sign.KeyID(pub)
	forgedBytes, err := json.Marshal(forgedDoc)
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string]struct {
		doc  []byte
		want error
	}{
		"one byte changed": {[]byte(strings.Replace(string(signed), `"j-1"`, `"j-7"`, 1)), sign.ErrBadSignature},
		"untrusted key":    {byStranger, sign.ErrUnknownKey},
		"forged key ID":    {forgedBytes, sign.ErrBadSignature},
		"no signature":     {[]byte(jobDoc), sign.ErrNoSignature},
		"null signature":   {[]byte(`{"job_id":"j","signature":null}`), sign.ErrNoSignature},
		"signature string": {[]byte(`{"job_id":"j","signature":"abc"}`), sign.ErrBadSignature},
		"no key_id":        {[]byte(`{"job_id":"j","signature":{"sig":"abc"}}`), sign.ErrBadSignature},
		"sig not base64":   {[]byte(`{"job_id":"j","signature":{"key_id":"` + sign.KeyID(pub) + `","sig":"%%"}}`), sign.ErrBadSignature},
	}
	for name, tc := range cases {
		if _, err := ring.VerifyJSONDocument(tc.doc); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	if _, err := ring.VerifyJSONDocument(byStranger); err == nil || !strings.Contains(err.Error(), strangerID) {
		t.Errorf("untrusted key: error %v should name key ID %s", err, strangerID)
	}
	if _, err := ring.VerifyJSONDocument([]byte(`{"a":1,"a":1}`)); err == nil {
		t.Error("document with a duplicate key verified")
	}
}

func TestCanonicalJSONDepthLimit(t *testing.T) {
	nested := func(levels int) string { // the object plus levels-1 arrays
		return `{"a":` + strings.Repeat("[", levels-1) + strings.Repeat("]", levels-1) + `}`
	}
	if _, err := sign.CanonicalJSON(nested(64)); err != nil {
		t.Fatalf("64 levels: %v", err)
	}
	if _, err := sign.CanonicalJSON(nested(65)); err == nil {
		t.Fatal("65 levels accepted")
	}
}
