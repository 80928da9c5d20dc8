package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/recipes"
)

func newTestFetcher(t testing.TB, dataDir string, repo *Repository, limit int64) *Fetcher {
	t.Helper()
	st := openStore(t, dataDir)
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := openTestCache(t, dataDir, st, limit, clock)
	d := testDownloader(t, DownloadConfig{})
	f, err := NewFetcher(FetcherConfig{Cache: c, Downloader: d, Repository: repo, ComponentsDir: filepath.Join(dataDir, "components")})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testRecipe(name, version string, arts ...recipes.Artifact) *recipes.Recipe {
	return &recipes.Recipe{Format: 1, Metadata: recipes.Metadata{Name: name, Version: version, Kind: recipes.KindProcess}, Artifacts: arts}
}

func TestFetchPlacesVersionsAndSharesArtifacts(t *testing.T) {
	ctx := context.Background()
	tgz := helloTarGz(t)
	tool := []byte("#!/bin/sh\necho tool\n")
	srvTgz := newFaultServer(t, tgz, nil)
	srvTool := newFaultServer(t, tool, nil)
	shared := recipes.Artifact{URI: srvTgz.URL + "/dl/hello.tar.gz", SHA256: shaHex(tgz), Unpack: true}
	v1 := testRecipe("com.example.hello", "1.0.0", shared, recipes.Artifact{URI: srvTool.URL + "/bin/tool", SHA256: shaHex(tool), Executable: true})
	v2 := testRecipe("com.example.hello", "1.1.0", shared)
	dataDir := t.TempDir()
	f := newTestFetcher(t, dataDir, nil, 0)
	var last Progress
	if err := f.Fetch(ctx, []*recipes.Recipe{v1, v2}, func(p Progress) { last = p }); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !last.Done {
		t.Error("no final progress report")
	}
	if gets, _ := srvTgz.stats(); gets != 1 {
		t.Errorf("shared artifact downloaded %d times, want once", gets)
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		fi, err := os.Stat(filepath.Join(f.VersionDir("com.example.hello", v), "hello"))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s/hello: %v, want an executable file", v, err)
		}
	}
	fi, err := os.Stat(filepath.Join(f.VersionDir("com.example.hello", "1.0.0"), "tool"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("1.0.0/tool: %v, want an executable copy", err)
	}
	// A second Fetch finds everything present: no request, folders untouched.
	marker := filepath.Join(f.VersionDir("com.example.hello", "1.0.0"), "hello")
	before, _ := os.Stat(marker)
	if err := f.Fetch(ctx, []*recipes.Recipe{v1}, nil); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	after, _ := os.Stat(marker)
	if gets, _ := srvTgz.stats(); gets != 1 || !os.SameFile(before, after) {
		t.Errorf("second Fetch downloaded again (%d) or replaced a placed folder", gets)
	}
	if err := f.Verify(ctx, []*recipes.Recipe{v1, v2}); err != nil {
		t.Errorf("Verify: %v", err)
	}
	// Corrupting the cache is caught by Verify and the file is dropped.
	p := f.cfg.Cache.Path(shaHex(tool))
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantReason(t, f.Verify(ctx, []*recipes.Recipe{v1}), ReasonHashMismatch)
	if f.cfg.Cache.Has(shaHex(tool)) {
		t.Error("corrupt artifact kept in the cache")
	}
	// GC through the fetcher keeps what the given recipes need.
	res, err := f.GC(ctx, []*recipes.Recipe{v2})
	if err != nil || len(res.Removed) != 0 {
		t.Errorf("GC without a limit removed %v (%v)", res.Removed, err)
	}
}

func TestFetchGarbageLeavesNothingBehind(t *testing.T) {
	body, _ := payload(t, 256<<10)
	garbage, _ := payload(t, len(body))
	srv := newFaultServer(t, garbage, nil)
	dataDir := t.TempDir()
	f := newTestFetcher(t, dataDir, nil, 0)
	r := testRecipe("com.example.hello", "1.0.0", recipes.Artifact{URI: srv.URL + "/a.bin", SHA256: shaHex(body)})
	err := f.Fetch(context.Background(), []*recipes.Recipe{r}, nil)
	wantReason(t, err, ReasonHashMismatch)
	assertNoArtifacts(t, dataDir)
	if _, err := os.Stat(f.VersionDir("com.example.hello", "1.0.0")); !os.IsNotExist(err) {
		t.Errorf("version folder exists after a failed fetch: %v", err)
	}
}

func TestFetchRefusesUnsafeArchiveBeforePlacing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "evil.zip")
	writeZip(t, p, []entry{{name: "ok", body: "fine"}, {name: "../../evil", body: "pwned"}})
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	srv := newFaultServer(t, data, nil)
	dataDir := t.TempDir()
	f := newTestFetcher(t, dataDir, nil, 0)
	r := testRecipe("com.example.hello", "1.0.0", recipes.Artifact{URI: srv.URL + "/evil.zip", SHA256: shaHex(data), Unpack: true})
	err = f.Fetch(context.Background(), []*recipes.Recipe{r}, nil)
	wantReason(t, err, ReasonUnsafeArchive)
	got := tree(t, filepath.Join(dataDir, "components"))
	if len(got) != 2 || got[1] != "com.example.hello" {
		t.Errorf("components folder = %v, want only the empty component folder (no version, no temp)", got)
	}
}

func TestFetchRepoURIWithoutRepository(t *testing.T) {
	f := newTestFetcher(t, t.TempDir(), nil, 0)
	r := testRecipe("com.example.hello", "1.0.0", recipes.Artifact{URI: "repo:com.example.hello/1.0.0/x", SHA256: shaHex([]byte("x"))})
	err := f.Fetch(context.Background(), []*recipes.Recipe{r}, nil)
	wantReason(t, err, ReasonDownloadFailed)
}
