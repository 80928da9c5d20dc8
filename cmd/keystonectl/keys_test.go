package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/ota/sign"
)

func TestKeysGenerate(t *testing.T) {
	base := filepath.Join(t.TempDir(), "ops")
	r := runCLI(t, "keys", "generate", "--out", base)
	r.expect(t, exitOK, []string{"KEY ID", "PRIVATE KEY", "PUBLIC KEY", base + ".key", base + ".pub"}, none)

	checkMode(t, base+".key", 0o600)
	checkMode(t, base+".pub", 0o644)
	priv, err := sign.LoadPrivateKey(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sign.LoadPublicKey(base + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("NAME.pub is not the public half of NAME.key")
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], sign.KeyID(pub)+" ") {
		t.Fatalf("table should be a header and one row starting with key ID %s:\n%s", sign.KeyID(pub), r.stdout)
	}

	// A second run must not replace the key.
	before, _ := os.ReadFile(base + ".key")
	runCLI(t, "keys", "generate", "--out", base).expect(t, exitError, none, []string{"Error: ", base + ".key", "already exists"})
	if after, _ := os.ReadFile(base + ".key"); string(after) != string(before) {
		t.Fatal("keys generate replaced an existing private key")
	}
}

func TestKeysGenerateJSON(t *testing.T) {
	base := filepath.Join(t.TempDir(), "ci")
	r := runCLI(t, "-o", "json", "keys", "generate", "--out", base)
	r.expect(t, exitOK, []string{`"key_id"`}, none)
	var got keyPairResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	pub, err := sign.LoadPublicKey(base + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	want := keyPairResult{KeyID: sign.KeyID(pub), PrivateKey: base + ".key", PublicKey: base + ".pub"}
	if got != want {
		t.Fatalf("JSON = %+v, want %+v", got, want)
	}
}

func TestKeysGenerateUsage(t *testing.T) {
	dir := t.TempDir()
	runCLI(t, "keys", "generate").expect(t, exitUsage, none, []string{"--out NAME is required"})
	runCLI(t, "keys", "generate", "--out", filepath.Join(dir, "ops.key")).
		expect(t, exitUsage, none, []string{"without .key or .pub"})
	runCLI(t, "keys", "generate", "--out", filepath.Join(dir, "a"), "extra").
		expect(t, exitUsage, none, []string{"takes no arguments"})
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("usage errors wrote %d files", len(entries))
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s mode = %04o, want %04o", path, got, want)
	}
}
