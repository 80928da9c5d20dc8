package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/ota/sign"
)

const helloRecipe = `format = 1

[metadata]
name    = "com.example.hello"
version = "1.2.0"
kind    = "process"

[lifecycle.run]
command = "./hello"
restart_policy = "always"
`

// keyPair generates NAME.key and NAME.pub in dir with keystonectl itself.
func keyPair(t *testing.T, dir, name string) (keyPath, pubPath string) {
	t.Helper()
	base := filepath.Join(dir, name)
	runCLI(t, "keys", "generate", "--out", base).expect(t, exitOK, []string{base + ".key"}, none)
	return base + ".key", base + ".pub"
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func keyIDOf(t *testing.T, pubPath string) string {
	t.Helper()
	pub, err := sign.LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	return sign.KeyID(pub)
}

// TestRecipeSignVerify is acceptance item 5: a valid signature passes, a
// one-byte change fails, a signature by another key fails.
func TestRecipeSignVerify(t *testing.T) {
	dir := t.TempDir()
	opsKey, opsPub := keyPair(t, dir, "ops")
	_, otherPub := keyPair(t, dir, "other")
	recipe := writeFile(t, filepath.Join(dir, "hello.recipe.toml"), helloRecipe)
	opsID := keyIDOf(t, opsPub)

	runCLI(t, "recipe", "sign", "--key", opsKey, recipe).
		expect(t, exitOK, []string{"FILE", "SIGNATURE", "KEY ID", recipe + ".sig", opsID}, none)
	content, err := os.ReadFile(recipe + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(string(content), "\n"); len(lines) != 2 || lines[1] != "" {
		t.Fatalf(".sig should be one line, got %q", content)
	}

	t.Run("valid signature passes", func(t *testing.T) {
		r := runCLI(t, "recipe", "verify", "--pub", opsPub, recipe)
		r.expect(t, exitOK, []string{"RESULT", recipe, "ok", opsID}, none)
	})
	t.Run("any trusted key may have signed", func(t *testing.T) {
		runCLI(t, "recipe", "verify", "--pub", otherPub, "--pub", opsPub, recipe).expect(t, exitOK, []string{opsID}, none)
	})
	t.Run("signature by another key fails", func(t *testing.T) {
		r := runCLI(t, "recipe", "verify", "--pub", otherPub, recipe)
		r.expect(t, exitError, []string{recipe, "FAILED: signature does not match"},
			[]string{"Error: 1 of 1 file(s) failed signature verification"})
	})
	t.Run("one-byte change fails", func(t *testing.T) {
		tampered := strings.Replace(helloRecipe, `"always"`, `"alwayz"`, 1)
		if len(tampered) != len(helloRecipe) {
			t.Fatal("tamper must change exactly one byte")
		}
		copyPath := writeFile(t, filepath.Join(dir, "tampered.recipe.toml"), tampered)
		writeFile(t, copyPath+".sig", string(content))
		// The untouched copy of the signature still verifies the original.
		runCLI(t, "recipe", "verify", "--pub", opsPub, recipe).expect(t, exitOK, nil, none)
		r := runCLI(t, "recipe", "verify", "--pub", opsPub, recipe, copyPath)
		r.expect(t, exitError, []string{recipe + "  ", "ok", copyPath, "FAILED"},
			[]string{"Error: 1 of 2 file(s) failed signature verification"})
	})
	t.Run("missing signature fails", func(t *testing.T) {
		unsigned := writeFile(t, filepath.Join(dir, "unsigned.recipe.toml"), helloRecipe)
		runCLI(t, "recipe", "verify", "--pub", opsPub, unsigned).
			expect(t, exitError, []string{"FAILED: no signature"}, []string{"Error: 1 of 1"})
	})
	t.Run("json", func(t *testing.T) {
		r := runCLI(t, "-o", "json", "recipe", "verify", "--pub", opsPub, recipe, filepath.Join(dir, "tampered.recipe.toml"))
		r.expect(t, exitError, []string{"["}, []string{"Error: 1 of 2"})
		var got []verifyResult
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		if len(got) != 2 || !got[0].Valid || got[0].KeyID != opsID || got[1].Valid || !strings.Contains(got[1].Error, "bad signature") {
			t.Fatalf("JSON results = %+v", got)
		}
	})
}

func TestRecipeSignJSONAndSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	key, pub := keyPair(t, dir, "ops")
	a := writeFile(t, filepath.Join(dir, "a.recipe.toml"), helloRecipe)
	b := writeFile(t, filepath.Join(dir, "b.recipe.toml"), helloRecipe+"# b\n")
	r := runCLI(t, "-o", "json", "recipe", "sign", "--key", key, a, b)
	r.expect(t, exitOK, nil, none)
	var got []signResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	id := keyIDOf(t, pub)
	want := []signResult{{a, a + ".sig", id}, {b, b + ".sig", id}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("JSON = %+v, want %+v", got, want)
	}
	runCLI(t, "recipe", "verify", "--pub", pub, a, b).expect(t, exitOK, nil, none)
}

func TestRecipeSignFailures(t *testing.T) {
	dir := t.TempDir()
	key, _ := keyPair(t, dir, "ops")
	recipe := writeFile(t, filepath.Join(dir, "hello.recipe.toml"), helloRecipe)

	t.Run("stops at an unreadable file after signing the ones before", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.recipe.toml")
		r := runCLI(t, "recipe", "sign", "--key", key, recipe, missing)
		r.expect(t, exitError, []string{recipe + ".sig"}, []string{"Error: ", missing, "no such file"})
		if _, err := os.Stat(recipe + ".sig"); err != nil {
			t.Fatalf("first file not signed: %v", err)
		}
	})
	t.Run("key readable by others is refused", func(t *testing.T) {
		if err := os.Remove(recipe + ".sig"); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(key, 0o600)
		runCLI(t, "recipe", "sign", "--key", key, recipe).
			expect(t, exitError, none, []string{"Error: ", key, "mode is 0644", "chmod 600"})
		if _, err := os.Stat(recipe + ".sig"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a signature was written with a refused key: %v", err)
		}
	})
	t.Run("public key given as --key", func(t *testing.T) {
		// As keys generate wrote it (mode 0644): named for what it is,
		// not refused for its mode.
		runCLI(t, "recipe", "sign", "--key", filepath.Join(dir, "ops.pub"), recipe).
			expect(t, exitError, none, []string{"Error: ", "this is a public key; sign with the private key"})
	})
	t.Run("bad public key file for verify", func(t *testing.T) {
		runCLI(t, "recipe", "verify", "--pub", key, recipe).
			expect(t, exitError, none, []string{"Error: load keyring: load public key " + key})
	})
}

func TestRecipeSignVerifyUsage(t *testing.T) {
	runCLI(t, "recipe", "sign", "x.recipe.toml").expect(t, exitUsage, none, []string{"--key KEY is required", "try 'keystonectl recipe sign --help'"})
	runCLI(t, "recipe", "sign", "--key", "k").expect(t, exitUsage, none, []string{"takes at least 1 argument(s): FILE..."})
	runCLI(t, "recipe", "verify", "x.recipe.toml").expect(t, exitUsage, none, []string{"--pub PUB is required", "try 'keystonectl recipe verify --help'"})
	runCLI(t, "recipe", "verify", "--pub", "p").expect(t, exitUsage, none, []string{"takes at least 1 argument(s)"})
}
