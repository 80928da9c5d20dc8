package ota

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/recipes"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh folder, unmounted at
// cleanup.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: the DISK_FULL test mounts a tmpfs and needs root; run the suite as root (CI does)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("SKIPPED LOUDLY: root without CAP_SYS_ADMIN cannot mount a tmpfs here: %v", err)
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestFetchDiskFullFailsCleanlyAndRecovers(t *testing.T) {
	ctx := context.Background()
	dataDir := mountTmpfs(t, "8m")
	body, sum := payload(t, 4<<20)
	srv := newFaultServer(t, body, nil)

	st := openStore(t, t.TempDir()) // the database lives elsewhere, as on a device with /var on another disk
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := openTestCache(t, dataDir, st, 0, clock)
	f, err := NewFetcher(FetcherConfig{Cache: c, Downloader: testDownloader(t, DownloadConfig{}), ComponentsDir: filepath.Join(dataDir, "components")})
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dataDir, "filler")
	if err := os.WriteFile(filler, make([]byte, 5<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	r := testRecipe("com.example.big", "1.0.0", recipes.Artifact{URI: srv.URL + "/big.bin", SHA256: sum})

	err = f.Fetch(ctx, []*recipes.Recipe{r}, nil)
	wantReason(t, err, ReasonDiskFull)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("err = %v, want ENOSPC inside", err)
	}
	assertNoArtifacts(t, dataDir)
	if gets, _ := srv.stats(); gets != 1 {
		t.Errorf("GET requests = %d, want 1 (a full disk is not retried)", gets)
	}

	// Space frees up; the next attempt succeeds.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := f.Fetch(ctx, []*recipes.Recipe{r}, nil); err != nil {
		t.Fatalf("Fetch after freeing space: %v", err)
	}
	if !c.Has(sum) {
		t.Error("artifact missing from the cache after the retry")
	}
	if _, err := os.Stat(filepath.Join(f.VersionDir("com.example.big", "1.0.0"), "big.bin")); err != nil {
		t.Errorf("version folder not placed: %v", err)
	}
}
