package sign_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/ota/sign"
)

const sampleRecipe = `format = 1
[metadata]
name    = "com.example.hello"
version = "1.2.0"
kind    = "process"
[lifecycle.run]
command = "./hello"
`

func TestSignVerifyDetectsEveryOneByteChange(t *testing.T) {
	pub, priv := newKey(t)
	data := []byte(sampleRecipe)
	sig := sign.Sign(priv, data)
	if len(sig) != 64 {
		t.Fatalf("signature has %d bytes, want 64", len(sig))
	}
	if err := sign.Verify(pub, data, sig); err != nil {
		t.Fatalf("valid signature: %v", err)
	}
	for i := range data {
		tampered := bytes.Clone(data)
		tampered[i] ^= 0x01
		if err := sign.Verify(pub, tampered, sig); !errors.Is(err, sign.ErrBadSignature) {
			t.Fatalf("byte %d changed: err = %v, want ErrBadSignature", i, err)
		}
	}
	if err := sign.Verify(pub, append(bytes.Clone(data), '\n'), sig); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("byte appended: err = %v, want ErrBadSignature", err)
	}
	badSig := bytes.Clone(sig)
	badSig[10] ^= 0x80
	if err := sign.Verify(pub, data, badSig); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("signature changed: err = %v, want ErrBadSignature", err)
	}
}

func TestVerifyRejectsAnotherKey(t *testing.T) {
	_, priv := newKey(t)
	otherPub, _ := newKey(t)
	data := []byte(sampleRecipe)
	err := sign.Verify(otherPub, data, sign.Sign(priv, data))
	if !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("err = %v, want ErrBadSignature", err)
	}
	if !strings.Contains(err.Error(), sign.KeyID(otherPub)) {
		t.Errorf("error %q should name the key tried", err)
	}
}

func TestVerifyMalformedInput(t *testing.T) {
	pub, priv := newKey(t)
	data := []byte("x")
	sig := sign.Sign(priv, data)
	if err := sign.Verify(pub, data, nil); !errors.Is(err, sign.ErrNoSignature) {
		t.Errorf("nil sig: err = %v, want ErrNoSignature", err)
	}
	if err := sign.Verify(pub, data, sig[:63]); !errors.Is(err, sign.ErrBadSignature) {
		t.Errorf("63-byte sig: err = %v, want ErrBadSignature", err)
	}
	err := sign.Verify(pub[:5], data, sig)
	if err == nil || errors.Is(err, sign.ErrBadSignature) {
		t.Errorf("5-byte public key: err = %v, want a key error", err)
	}
}

func TestSignatureFileEncoding(t *testing.T) {
	_, priv := newKey(t)
	sig := sign.Sign(priv, []byte("data"))
	content := sign.EncodeSignature(sig)
	if !bytes.HasSuffix(content, []byte("\n")) || bytes.Count(content, []byte("\n")) != 1 {
		t.Fatalf("content %q is not one line ending in a newline", content)
	}
	if want := base64.StdEncoding.EncodeToString(sig) + "\n"; string(content) != want {
		t.Fatalf("content = %q, want %q", content, want)
	}
	for _, variant := range [][]byte{content, bytes.TrimSpace(content), append([]byte("  "), bytes.ReplaceAll(content, []byte("\n"), []byte("\r\n"))...)} {
		got, err := sign.DecodeSignature(variant)
		if err != nil {
			t.Fatalf("DecodeSignature(%q): %v", variant, err)
		}
		if !bytes.Equal(got, sig) {
			t.Fatalf("DecodeSignature(%q) = %x, want %x", variant, got, sig)
		}
	}

	bad := map[string]struct {
		content []byte
		want    error
	}{
		"empty":      {nil, sign.ErrNoSignature},
		"blank":      {[]byte(" \n"), sign.ErrNoSignature},
		"not base64": {[]byte("!!!!\n"), sign.ErrBadSignature},
		"too short":  {[]byte(base64.StdEncoding.EncodeToString(sig[:32]) + "\n"), sign.ErrBadSignature},
		"too long":   {[]byte(base64.StdEncoding.EncodeToString(append(sig, 0)) + "\n"), sign.ErrBadSignature},
	}
	for name, tc := range bad {
		if _, err := sign.DecodeSignature(tc.content); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestSignFileWritesDetachedSignature(t *testing.T) {
	pub, priv := newKey(t)
	dir := t.TempDir()
	keyPath, _, err := sign.WriteKeyPair(filepath.Join(dir, "ops"), pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	recipe := filepath.Join(dir, "hello.recipe.toml")
	if err := os.WriteFile(recipe, []byte(sampleRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sign.SigPath(recipe), []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	keyID, err := sign.SignFile(keyPath, recipe)
	if err != nil {
		t.Fatal(err)
	}
	if keyID != sign.KeyID(pub) {
		t.Fatalf("SignFile key ID = %q, want %q", keyID, sign.KeyID(pub))
	}
	if sign.SigPath(recipe) != recipe+".sig" {
		t.Fatalf("SigPath = %q", sign.SigPath(recipe))
	}
	content, err := os.ReadFile(recipe + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sign.DecodeSignature(content)
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.Verify(pub, []byte(sampleRecipe), sig); err != nil {
		t.Fatalf("written signature does not verify: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 { // ops.key ops.pub hello.recipe.toml hello.recipe.toml.sig
		t.Fatalf("folder holds %d entries, want 4 (no temporary files left)", len(entries))
	}
}

func TestSignFileFailures(t *testing.T) {
	pub, priv := newKey(t)
	dir := t.TempDir()
	keyPath, _, err := sign.WriteKeyPair(filepath.Join(dir, "ops"), pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.SignFile(keyPath, filepath.Join(dir, "missing.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	recipe := filepath.Join(dir, "r.recipe.toml")
	if err := os.WriteFile(recipe, []byte(sampleRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.SignFile(keyPath, recipe); !errors.Is(err, sign.ErrInsecureKeyFile) {
		t.Errorf("loose key mode: err = %v, want ErrInsecureKeyFile", err)
	}
	if _, err := os.Stat(recipe + ".sig"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a signature was written with a refused key: %v", err)
	}
	if err := sign.SignFileWithKey(priv[:3], recipe); err == nil {
		t.Error("SignFileWithKey with a 3-byte key succeeded")
	}
}
