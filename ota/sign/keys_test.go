package sign_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/ota/sign"
)

// newKey returns a fresh key pair or fails the test.
func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestKeyIDIsSHA256PrefixOfRawKey(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	id := sign.KeyID(pub)
	if len(id) != 16 {
		t.Fatalf("KeyID = %q, want 16 hex characters", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		t.Fatalf("KeyID = %q is not hex: %v", id, err)
	}
	if again := sign.KeyID(bytes.Clone(pub)); again != id {
		t.Fatalf("KeyID not deterministic: %q then %q", id, again)
	}
	other, _ := newKey(t)
	if sign.KeyID(other) == id {
		t.Fatalf("two different keys share KeyID %q", id)
	}
	if got := sign.KeyID(pub[:31]); got != "" {
		t.Fatalf("KeyID of a 31-byte slice = %q, want empty", got)
	}
}

func TestKeyPairFilesRoundTripWithModes(t *testing.T) {
	pub, priv := newKey(t)
	base := filepath.Join(t.TempDir(), "ops")
	keyPath, pubPath, err := sign.WriteKeyPair(base, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	if keyPath != base+".key" || pubPath != base+".pub" {
		t.Fatalf("paths = %q, %q", keyPath, pubPath)
	}
	if m := fileMode(t, keyPath); m != 0o600 {
		t.Errorf("private key mode = %04o, want 0600", m)
	}
	if m := fileMode(t, pubPath); m != 0o644 {
		t.Errorf("public key mode = %04o, want 0644", m)
	}

	keyPEM, _ := os.ReadFile(keyPath)
	if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("private key file is not a PEM PRIVATE KEY block:\n%s", keyPEM)
	}
	pubPEM, _ := os.ReadFile(pubPath)
	if block, _ := pem.Decode(pubPEM); block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public key file is not a PEM PUBLIC KEY block:\n%s", pubPEM)
	}

	gotPriv, err := sign.LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPriv.Equal(priv) {
		t.Error("loaded private key differs from the written one")
	}
	gotPub, err := sign.LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPub.Equal(pub) {
		t.Error("loaded public key differs from the written one")
	}
}

func TestWriteKeyPairNeverReplacesFiles(t *testing.T) {
	pub, priv := newKey(t)
	dir := t.TempDir()

	base := filepath.Join(dir, "a")
	if err := os.WriteFile(base+".key", []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sign.WriteKeyPair(base, pub, priv); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteKeyPair over an existing .key: err = %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(base + ".key"); string(got) != "precious" {
		t.Fatalf("existing key file was changed to %q", got)
	}
	if _, err := os.Stat(base + ".pub"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf(".pub written although the pair failed: %v", err)
	}

	base = filepath.Join(dir, "b")
	if err := os.WriteFile(base+".pub", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sign.WriteKeyPair(base, pub, priv); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteKeyPair over an existing .pub: err = %v, want fs.ErrExist", err)
	}
	if _, err := os.Stat(base + ".key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf(".key left behind although the pair failed: %v", err)
	}
}

// A public key given where the private key belongs (keystonectl recipe
// sign --key ops.pub) is named for what it is, not refused for its mode.
func TestLoadPrivateKeySaysAPublicKeyIsOne(t *testing.T) {
	pub, _ := newKey(t)
	path := filepath.Join(t.TempDir(), "ops.pub")
	if err := sign.WritePublicKey(path, pub); err != nil {
		t.Fatal(err)
	}
	_, err := sign.LoadPrivateKey(path)
	if err == nil || errors.Is(err, sign.ErrInsecureKeyFile) || !strings.Contains(err.Error(), "this is a public key") {
		t.Fatalf("err = %v, want a message saying it is a public key", err)
	}
}

func TestLoadPrivateKeyRefusesLooseModes(t *testing.T) {
	_, priv := newKey(t)
	path := filepath.Join(t.TempDir(), "ops.key")
	if err := sign.WritePrivateKey(path, priv); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o660, 0o644, 0o601} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := sign.LoadPrivateKey(path)
		if !errors.Is(err, sign.ErrInsecureKeyFile) {
			t.Fatalf("mode %04o: err = %v, want ErrInsecureKeyFile", mode, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, "chmod 600") {
			t.Errorf("mode %04o: message %q should name the file and the fix", mode, msg)
		}
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := sign.LoadPrivateKey(path); err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
	}
}

func TestParseKeysRejectsWrongInput(t *testing.T) {
	pub, priv := newKey(t)
	privPEM, _ := sign.MarshalPrivateKey(priv)
	pubPEM, _ := sign.MarshalPublicKey(pub)

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPrivDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	ecPrivPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPrivDER})
	ecPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER})

	privCases := map[string][]byte{
		"empty":            nil,
		"not PEM":          []byte("hello"),
		"public key block": pubPEM,
		"ECDSA key":        ecPrivPEM,
		"bad DER":          pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	}
	for name, data := range privCases {
		if _, err := sign.ParsePrivateKey(data); err == nil {
			t.Errorf("ParsePrivateKey(%s) succeeded", name)
		}
	}
	pubCases := map[string][]byte{
		"empty":             nil,
		"not PEM":           []byte("hello"),
		"private key block": privPEM,
		"ECDSA key":         ecPubPEM,
		"bad DER":           pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}),
	}
	for name, data := range pubCases {
		if _, err := sign.ParsePublicKey(data); err == nil {
			t.Errorf("ParsePublicKey(%s) succeeded", name)
		}
	}

	if _, err := sign.MarshalPrivateKey(priv[:10]); err == nil {
		t.Error("MarshalPrivateKey of a short key succeeded")
	}
	if _, err := sign.MarshalPublicKey(pub[:10]); err == nil {
		t.Error("MarshalPublicKey of a short key succeeded")
	}
	if _, err := sign.LoadPublicKey(filepath.Join(t.TempDir(), "missing.pub")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadPublicKey(missing) err = %v, want fs.ErrNotExist", err)
	}
}
