package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildBinary builds keystonectl the way it ships (CGO_ENABLED=0) into a
// temporary folder and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build keystonectl: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "keystonectl")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs the built keystonectl with args in dir.
func runBinary(t *testing.T, bin, dir string, args ...string) result {
	t.Helper()
	return runBinaryEnv(t, bin, dir, nil, args...)
}

// runBinaryEnv is runBinary with env ("KEY=value") added to the environment.
func runBinaryEnv(t *testing.T, bin, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// TestBinarySignVerifyRoundTrip drives the shipped binary through acceptance
// item 5: keys generate → recipe sign → recipe verify → one-byte tamper →
// verify fails → a signature by another key fails.
func TestBinarySignVerifyRoundTrip(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()

	r := runBinary(t, bin, dir, "keys", "generate", "--out", "ops")
	r.expect(t, exitOK, []string{"ops.key", "ops.pub"}, none)
	checkMode(t, filepath.Join(dir, "ops.key"), 0o600)
	checkMode(t, filepath.Join(dir, "ops.pub"), 0o644)
	runBinary(t, bin, dir, "keys", "generate", "--out", "other").expect(t, exitOK, nil, none)

	recipe := writeFile(t, filepath.Join(dir, "hello.recipe.toml"), helloRecipe)
	runBinary(t, bin, dir, "recipe", "sign", "--key", "ops.key", "hello.recipe.toml").
		expect(t, exitOK, []string{"hello.recipe.toml.sig"}, none)
	runBinary(t, bin, dir, "recipe", "verify", "--pub", "ops.pub", "hello.recipe.toml").
		expect(t, exitOK, []string{"ok", keyIDOf(t, filepath.Join(dir, "ops.pub"))}, none)

	data, err := os.ReadFile(recipe)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("1.2.0"))
	data[i+4] = '1' // 1.2.0 -> 1.2.1, one byte
	if err := os.WriteFile(recipe, data, 0o644); err != nil {
		t.Fatal(err)
	}
	runBinary(t, bin, dir, "recipe", "verify", "--pub", "ops.pub", "hello.recipe.toml").
		expect(t, exitError, []string{"FAILED"}, []string{"Error: 1 of 1 file(s) failed signature verification"})

	// Re-signed by the other key: valid for other.pub, not for ops.pub.
	runBinary(t, bin, dir, "recipe", "sign", "--key", "other.key", "hello.recipe.toml").expect(t, exitOK, nil, none)
	runBinary(t, bin, dir, "recipe", "verify", "--pub", "ops.pub", "hello.recipe.toml").
		expect(t, exitError, []string{"FAILED"}, []string{"Error: "})
	runBinary(t, bin, dir, "recipe", "verify", "--pub", "other.pub", "hello.recipe.toml").expect(t, exitOK, nil, none)

	// Usage errors exit 2, and the environment names the socket.
	r = runBinary(t, bin, dir, "recipe", "verify", "hello.recipe.toml")
	r.expect(t, exitUsage, none, []string{"--pub PUB is required", "try 'keystonectl recipe verify --help'"})
	if !strings.HasPrefix(r.stderr, "Error: ") {
		t.Errorf("usage error should start with Error:, got %q", r.stderr)
	}
	runBinaryEnv(t, bin, dir, []string{"KEYSTONE_SOCKET=/tmp/from-env.sock"}, "--help").
		expect(t, exitOK, []string{`(env KEYSTONE_SOCKET) (default "/tmp/from-env.sock")`}, none)
}
