package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// JSONSignature is the "signature" member of a signed job document: the
// signing key's ID and the base64 ed25519 signature of the
// document's canonical JSON.
type JSONSignature struct {
	KeyID string `json:"key_id"`
	Sig   string `json:"sig"`
}

// SignJSON signs the canonical JSON of doc (see CanonicalJSON) with priv and
// returns the key's ID and the base64 signature, the two fields of
// JSONSignature.
func SignJSON(priv ed25519.PrivateKey, doc any) (keyID, sigB64 string, err error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", "", fmt.Errorf("sign JSON: private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	canon, err := CanonicalJSON(doc)
	if err != nil {
		return "", "", fmt.Errorf("sign JSON: %w", err)
	}
	sig := Sign(priv, canon)
	return KeyID(priv.Public().(ed25519.PublicKey)), base64.StdEncoding.EncodeToString(sig), nil
}

// VerifyJSON checks that sigB64 is pub's signature of the canonical JSON of
// doc. Errors match ErrNoSignature (empty sigB64) or ErrBadSignature.
func VerifyJSON(pub ed25519.PublicKey, doc any, sigB64 string) error {
	canon, err := CanonicalJSON(doc)
	if err != nil {
		return fmt.Errorf("verify JSON: %w", err)
	}
	return verifyCanonical(pub, canon, sigB64)
}

func verifyCanonical(pub ed25519.PublicKey, canon []byte, sigB64 string) error {
	if sigB64 == "" {
		return fmt.Errorf("verify JSON: %w", ErrNoSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return fmt.Errorf("verify JSON: %w: signature is not base64: %v", ErrBadSignature, err)
	}
	if err := Verify(pub, canon, sig); err != nil {
		return fmt.Errorf("verify JSON: %w", err)
	}
	return nil
}

// SignJSONDocument returns doc in canonical form with a "signature" member
// {key_id, sig} made by priv, replacing any signature it had.
func SignJSONDocument(priv ed25519.PrivateKey, doc any) ([]byte, error) {
	obj, err := decodeDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("sign JSON: %w", err)
	}
	keyID, sigB64, err := SignJSON(priv, obj)
	if err != nil {
		return nil, err
	}
	obj[SignatureField] = JSONSignature{KeyID: keyID, Sig: sigB64}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("sign JSON: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// VerifyJSONDocument checks the "signature" member of the job document doc
// against the trusted keys and returns the signing key's ID. Errors match
// ErrNoSignature (no or null "signature"), ErrUnknownKey (its key_id is not
// trusted) or ErrBadSignature (malformed, or not a signature of this
// document's canonical JSON by that key).
func (k *Keyring) VerifyJSONDocument(doc []byte) (keyID string, err error) {
	obj, err := decodeDocument(doc)
	if err != nil {
		return "", fmt.Errorf("verify JSON: %w", err)
	}
	raw, ok := obj[SignatureField]
	if !ok || raw == nil {
		return "", fmt.Errorf("verify JSON: %w: document has no %q member", ErrNoSignature, SignatureField)
	}
	member, ok := raw.(map[string]any)
	if !ok {
		return "", fmt.Errorf("verify JSON: %w: %q is not an object", ErrBadSignature, SignatureField)
	}
	keyID, _ = member["key_id"].(string)
	sigB64, _ := member["sig"].(string)
	if keyID == "" || sigB64 == "" {
		return "", fmt.Errorf("verify JSON: %w: %q needs string members key_id and sig", ErrBadSignature, SignatureField)
	}
	pub, ok := k.Lookup(keyID)
	if !ok {
		return "", fmt.Errorf("verify JSON: %w: key ID %s is not trusted", ErrUnknownKey, keyID)
	}
	canon, err := canonicalObject(obj)
	if err != nil {
		return "", fmt.Errorf("verify JSON: %w", err)
	}
	if err := verifyCanonical(pub, canon, sigB64); err != nil {
		return "", err
	}
	return keyID, nil
}
