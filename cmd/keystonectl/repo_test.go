package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

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
