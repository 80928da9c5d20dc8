package sign_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/ota/sign"
)

// signedRecipe writes a recipe signed by a new key into dir and returns the
// recipe path and the key's public key file.
func signedRecipe(t *testing.T, dir, name string) (recipe, pubPath string) {
	t.Helper()
	pub, priv := newKey(t)
	keyPath, pubPath, err := sign.WriteKeyPair(filepath.Join(dir, name), pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	recipe = filepath.Join(dir, name+".recipe.toml")
	if err := os.WriteFile(recipe, []byte(sampleRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.SignFile(keyPath, recipe); err != nil {
		t.Fatal(err)
	}
	return recipe, pubPath
}

func TestKeyringVerifyFile(t *testing.T) {
	dir := t.TempDir()
	recipe, opsPub := signedRecipe(t, dir, "ops")
	_, devPub := signedRecipe(t, dir, "dev")
	strangerRecipe, _ := signedRecipe(t, dir, "stranger")

	ring, err := sign.LoadKeyring(devPub, opsPub)
	if err != nil {
		t.Fatal(err)
	}
	if ring.Len() != 2 {
		t.Fatalf("Len = %d, want 2", ring.Len())
	}
	ops, _ := sign.LoadPublicKey(opsPub)

	t.Run("valid signature by the second key passes", func(t *testing.T) {
		keyID, err := ring.VerifyFile(recipe)
		if err != nil {
			t.Fatal(err)
		}
		if keyID != sign.KeyID(ops) {
			t.Fatalf("key ID = %q, want %q", keyID, sign.KeyID(ops))
		}
	})
	t.Run("signature by another key fails", func(t *testing.T) {
		_, err := ring.VerifyFile(strangerRecipe)
		if !errors.Is(err, sign.ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
		if !strings.Contains(err.Error(), strangerRecipe) {
			t.Errorf("error %q should name the file", err)
		}
	})
	t.Run("one-byte change fails", func(t *testing.T) {
		tampered := filepath.Join(dir, "tampered.recipe.toml")
		data := []byte(sampleRecipe)
		data[len(data)/2] ^= 0x20
		sig, _ := os.ReadFile(recipe + ".sig")
		if err := os.WriteFile(tampered, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tampered+".sig", sig, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ring.VerifyFile(tampered)
		if !errors.Is(err, sign.ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
		// It cannot tell an edit from a stranger's key, so it names both
		// rather than reading as "wrong key".
		if msg := err.Error(); !strings.Contains(msg, "changed after it was signed") || !strings.Contains(msg, "not trusted") {
			t.Errorf("message %q does not say the file may have been edited", msg)
		}
	})
	t.Run("missing or empty signature file", func(t *testing.T) {
		unsigned := filepath.Join(dir, "unsigned.recipe.toml")
		if err := os.WriteFile(unsigned, []byte(sampleRecipe), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ring.VerifyFile(unsigned); !errors.Is(err, sign.ErrNoSignature) {
			t.Fatalf("missing .sig: err = %v, want ErrNoSignature", err)
		}
		if err := os.WriteFile(unsigned+".sig", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ring.VerifyFile(unsigned); !errors.Is(err, sign.ErrNoSignature) {
			t.Fatalf("empty .sig: err = %v, want ErrNoSignature", err)
		}
		if err := os.WriteFile(unsigned+".sig", []byte("garbage\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ring.VerifyFile(unsigned); !errors.Is(err, sign.ErrBadSignature) {
			t.Fatalf("garbage .sig: err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := ring.VerifyFile(filepath.Join(dir, "nope.toml")); err == nil {
			t.Fatal("VerifyFile of a missing file succeeded")
		}
	})
}

func TestEmptyKeyringTrustsNothing(t *testing.T) {
	pub, priv := newKey(t)
	data := []byte(sampleRecipe)
	content := sign.EncodeSignature(sign.Sign(priv, data))
	for name, ring := range map[string]*sign.Keyring{"nil": nil, "zero": {}, "empty": mustKeyring(t)} {
		if _, err := ring.VerifyDetached(data, content); !errors.Is(err, sign.ErrUnknownKey) {
			t.Errorf("%s keyring: err = %v, want ErrUnknownKey", name, err)
		}
		if _, ok := ring.Lookup(sign.KeyID(pub)); ok {
			t.Errorf("%s keyring: Lookup found a key", name)
		}
		if ring.Len() != 0 || len(ring.KeyIDs()) != 0 {
			t.Errorf("%s keyring: Len = %d, KeyIDs = %v", name, ring.Len(), ring.KeyIDs())
		}
	}
}

func mustKeyring(t *testing.T, pubs ...ed25519.PublicKey) *sign.Keyring {
	t.Helper()
	ring, err := sign.NewKeyring(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func TestNewKeyring(t *testing.T) {
	a, _ := newKey(t)
	b, _ := newKey(t)
	ring := mustKeyring(t, a, b, a)
	if ring.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (duplicate kept once)", ring.Len())
	}
	if ids := ring.KeyIDs(); ids[0] != sign.KeyID(a) || ids[1] != sign.KeyID(b) {
		t.Fatalf("KeyIDs = %v, want [%s %s]", ids, sign.KeyID(a), sign.KeyID(b))
	}
	got, ok := ring.Lookup(sign.KeyID(b))
	if !ok || !got.Equal(b) {
		t.Fatalf("Lookup(b) = %x, %v", got, ok)
	}
	if _, err := sign.NewKeyring(a[:4]); err == nil {
		t.Fatal("NewKeyring with a 4-byte key succeeded")
	}
}

func TestLoadKeyringNamesTheBadFile(t *testing.T) {
	dir := t.TempDir()
	_, good := signedRecipe(t, dir, "ops")
	bad := filepath.Join(dir, "bad.pub")
	if err := os.WriteFile(bad, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := sign.LoadKeyring(good, bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v, want one naming %s", err, bad)
	}
}
