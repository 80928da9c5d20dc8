package main

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/keystone-edge/keystone/internal/elftest"
	"github.com/keystone-edge/keystone/ota"
)

func TestRepoInitAddPublishServesAVerifiableComponent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	runCLI(t, "repo", "init", dir).expect(t, exitOK, []string{"SERVE", filepath.Join(dir, "repository"), filepath.Join(dir, "keys")}, none)
	checkMode(t, filepath.Join(dir, "keys", "root.key"), 0o600)
	runCLI(t, "repo", "init", dir).expect(t, exitError, none, []string{"already exists"})

	src := t.TempDir()
	art := []byte("#!/bin/sh\necho hello\n")
	sum := sha256.Sum256(art)
	if err := os.WriteFile(filepath.Join(src, "hello"), art, 0o755); err != nil {
		t.Fatal(err)
	}
	recipe := `format = 1
[metadata]
name = "com.example.hello"
version = "1.2.0"
kind = "process"
[[artifacts]]
uri = "repo:com.example.hello/1.2.0/hello"
sha256 = "` + hex.EncodeToString(sum[:]) + `"
executable = true
[lifecycle.run]
command = "./hello"
`
	if err := os.WriteFile(filepath.Join(src, "hello.recipe.toml"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "-o", "json", "repo", "add", dir, "--recipe", filepath.Join(src, "hello.recipe.toml"), "--artifact", filepath.Join(src, "hello"))
	r.expect(t, exitOK, []string{`"com.example.hello/1.2.0/hello"`}, none)
	var added repoAddResult
	if err := json.Unmarshal([]byte(r.stdout), &added); err != nil || added.Version != "1.2.0" || len(added.Targets) != 2 {
		t.Fatalf("repo add JSON = %+v (%v)", added, err)
	}
	runCLI(t, "repo", "publish", dir).expect(t, exitOK, []string{"TIMESTAMP", "2"}, none)
	runCLI(t, "repo", "rotate-key", dir, "--role", "timestamp").expect(t, exitOK, []string{"timestamp"}, none)

	// Any static server will do; a device trusting the root resolves it.
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "repository"))))
	defer srv.Close()
	repo, err := ota.NewRepository(ota.RepositoryConfig{RootFile: filepath.Join(dir, "repository", "1.root.json"),
		URL: srv.URL, CacheDir: t.TempDir(), AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := repo.Resolve(context.Background(), "com.example.hello", "1.2.0")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if string(res.Recipe) != recipe {
		t.Error("served recipe differs from the added one")
	}
}

func TestRepoUsage(t *testing.T) {
	dir := t.TempDir()
	runCLI(t, "repo", "init").expect(t, exitUsage, none, []string{"takes one argument: DIR"})
	runCLI(t, "repo", "add", dir).expect(t, exitUsage, none, []string{"--recipe R is required"})
	runCLI(t, "repo", "rotate-key", dir, "--role", "admin").expect(t, exitUsage, none, []string{"--role must be one of"})
	runCLI(t, "repo", "publish", dir).expect(t, exitError, none, []string{"Error: "})
}

func TestRepoAddAgentReleaseIsInstallableByADevice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	runCLI(t, "repo", "init", dir).expect(t, exitOK, nil, none)
	agent := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_AARCH64}, "agent 1.4.0")
	shim := elftest.Write(t, "keystone-shim", elftest.Header{Machine: elf.EM_AARCH64}, "shim 1.4.0")

	// The architecture comes from the ELF header.
	r := runCLI(t, "-o", "json", "repo", "add", dir, "--agent-release", "1.4.0", "--agent", agent, "--shim", shim)
	r.expect(t, exitOK, []string{`"keystone-agent/1.4.0/linux-arm64"`}, none)
	var added repoAddReleaseResult
	if err := json.Unmarshal([]byte(r.stdout), &added); err != nil || added.OS != "linux" || added.Arch != "arm64" ||
		len(added.Files) != 2 || len(added.SHA256) != 64 || added.Length == 0 {
		t.Fatalf("repo add --agent-release JSON = %+v (%v)", added, err)
	}
	amd := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_X86_64}, "agent 1.4.0")
	runCLI(t, "repo", "add", dir, "--agent-release", "1.4.0", "--agent", amd, "--os", "linux", "--arch", "amd64").
		expect(t, exitOK, []string{"TARGET", "keystone-agent/1.4.0/linux-amd64", "keystone-agent"}, none)
	runCLI(t, "repo", "publish", dir).expect(t, exitOK, nil, none)

	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "repository"))))
	defer srv.Close()
	repo, err := ota.NewRepository(ota.RepositoryConfig{RootFile: filepath.Join(dir, "repository", "1.root.json"),
		URL: srv.URL, CacheDir: t.TempDir(), AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "releases", "1.4.0")
	if err := repo.FetchRelease(context.Background(), "1.4.0", "linux", "arm64", dest); err != nil {
		t.Fatalf("FetchRelease: %v", err)
	}
	for name, src := range map[string]string{"keystone-agent": agent, "keystone-shim": shim} {
		want, _ := os.ReadFile(src)
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("installed %s differs from the added one (%v)", name, err)
		}
	}
}

func TestRepoAddAgentReleaseRefusesWhatWouldBrickADevice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	runCLI(t, "repo", "init", dir).expect(t, exitOK, nil, none)
	text := filepath.Join(t.TempDir(), "keystone-agent")
	if err := os.WriteFile(text, []byte("#!/bin/sh\nexec /usr/local/bin/keystone-agent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	freebsd := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_X86_64, OSABI: elf.ELFOSABI_FREEBSD}, "")
	arm := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_AARCH64}, "")
	amdShim := elftest.Write(t, "keystone-shim", elftest.Header{Machine: elf.EM_X86_64}, "")
	add := func(args ...string) result {
		return runCLI(t, append([]string{"repo", "add", dir, "--agent-release", "1.4.0"}, args...)...)
	}
	add("--agent", text).expect(t, exitError, none, []string{"is a script, not an ELF executable for linux", "could not start"})
	add("--agent", freebsd).expect(t, exitError, none, []string{"is built for freebsd, not linux"})
	add("--agent", arm, "--arch", "amd64").expect(t, exitError, none, []string{"is built for linux/arm64, not linux/amd64"})
	add("--agent", arm, "--shim", amdShim).expect(t, exitError, none, []string{"the agent for linux/arm64"})
	r := runCLI(t, "-o", "json", "repo", "add", dir, "--agent-release", "1.4.0", "--agent", text)
	r.expect(t, exitError, []string{`"code": "FAILED"`, "not an ELF executable"}, nil)
}

func TestRepoAddAgentReleaseUsage(t *testing.T) {
	dir := t.TempDir()
	agent := filepath.Join(dir, "keystone-agent")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--agent-release", "1.4.0"}, "--agent FILE is required with --agent-release"},
		{[]string{"--agent", agent}, "--agent go with --agent-release VERSION"},
		{[]string{"--recipe", "r.toml", "--arch", "arm64"}, "--arch go with --agent-release VERSION"},
		{[]string{"--recipe", "r.toml", "--agent-release", "1.4.0", "--agent", agent}, "--recipe and --agent-release cannot be combined"},
		{[]string{"--agent-release", "1.4.0", "--agent", agent, "--artifact", "a"}, "--artifact goes with --recipe"},
		{[]string{"--agent-release", "v1.4", "--agent", agent}, "not a semantic version"},
		{[]string{"--agent-release", "1.4.0", "--agent", agent, "--os", "windows"}, "--os must be linux"},
		{[]string{"--agent-release", "1.4.0", "--agent", agent, "--arch", "mips"}, "--arch must be one of amd64, arm64, arm, 386, riscv64"},
	} {
		runCLI(t, append([]string{"repo", "add", dir}, tc.args...)...).expect(t, exitUsage, none, []string{tc.want, "--help"})
	}
}
