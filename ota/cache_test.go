package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/store"
)

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, "keystone.db"))
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openTestCache(t testing.TB, dataDir string, st *store.Store, limit int64, clock *fakeclock.Clock) *Cache {
	t.Helper()
	c, err := OpenCache(context.Background(), CacheConfig{Dir: filepath.Join(dataDir, "artifacts"), Index: st, Limit: limit, Now: clock.Now})
	if err != nil {
		t.Fatalf("OpenCache: %v", err)
	}
	return c
}

// putArtifact writes body as a finished download and commits it.
func putArtifact(t testing.TB, c *Cache, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sha := hex.EncodeToString(sum[:])
	if err := os.WriteFile(c.partialPath(sha), body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.commit(context.Background(), sha); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return sha
}

func TestCacheGCStaysWithinLimitAndKeepsNeeded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	const unit = 100 << 10
	c := openTestCache(t, dir, st, 250<<10, clock)
	var shas []string
	for i := 0; i < 4; i++ {
		body, _ := payload(t, unit)
		shas = append(shas, putArtifact(t, c, body))
		clock.Advance(time.Minute)
	}
	a, b, cc, d := shas[0], shas[1], shas[2], shas[3]
	// A is the oldest but still needed by an installed version.
	res, err := c.GC(ctx, map[string]bool{a: true})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if !slices.Equal(res.Removed, []string{b, cc}) {
		t.Errorf("removed %v, want the two least recently used unneeded ones %v", res.Removed, []string{b, cc})
	}
	if res.Size > 250<<10 || res.OverLimit {
		t.Errorf("size after GC = %d (over limit %v), want <= %d", res.Size, res.OverLimit, 250<<10)
	}
	for _, sha := range []string{a, d} {
		if !c.Has(sha) {
			t.Errorf("artifact %s removed, want kept", sha[:8])
		}
	}
	for _, sha := range []string{b, cc} {
		if _, err := os.Stat(c.Path(sha)); !os.IsNotExist(err) {
			t.Errorf("artifact %s still on disk", sha[:8])
		}
	}
	rows, err := st.ListArtifacts(ctx)
	if err != nil || len(rows) != 2 {
		t.Fatalf("index has %d rows (%v), want 2", len(rows), err)
	}
	if size, _ := c.Size(ctx); size != 2*unit {
		t.Errorf("Size = %d, want %d", size, 2*unit)
	}

	// Touching changes the order: A used now, D becomes the LRU.
	clock.Advance(time.Minute)
	if err := c.Touch(ctx, a); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	for i := 0; i < 2; i++ {
		body, _ := payload(t, unit)
		putArtifact(t, c, body)
		clock.Advance(time.Minute)
	}
	res, err = c.GC(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 2 || res.Removed[0] != d || res.Removed[1] != a {
		t.Errorf("removed %v, want D then A (least recently used first)", res.Removed)
	}

	// Needed artifacts beyond the limit are kept and reported.
	rows, _ = st.ListArtifacts(ctx)
	keep := map[string]bool{}
	for _, r := range rows {
		keep[r.SHA256] = true
	}
	body, _ := payload(t, unit)
	keep[putArtifact(t, c, body)] = true
	res, err = c.GC(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 0 || !res.OverLimit {
		t.Errorf("GC with everything needed: removed %v, OverLimit %v; want nothing removed and OverLimit", res.Removed, res.OverLimit)
	}
}

func TestCacheNeverTrustsHalfWrittenFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := openTestCache(t, dir, st, 0, clock)

	good, goodSHA := payload(t, 64<<10)
	kept := putArtifact(t, c, good)

	// Crash leftovers: a half download in .partial, a final-named file the
	// index never heard of (good bytes, renamed before PutArtifact), one
	// with wrong bytes, and an index row whose file vanished.
	half, halfSHA := payload(t, 64<<10)
	if err := os.WriteFile(c.partialPath(halfSHA), half[:len(half)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	orphan, orphanSHA := payload(t, 1000)
	if err := os.WriteFile(c.Path(orphanSHA), orphan, 0o444); err != nil {
		t.Fatal(err)
	}
	_, liarSHA := payload(t, 1000)
	if err := os.WriteFile(c.Path(liarSHA), []byte("truncated"), 0o444); err != nil {
		t.Fatal(err)
	}
	_, ghostSHA := payload(t, 10)
	if err := st.PutArtifact(ctx, store.Artifact{SHA256: ghostSHA, Size: 10}); err != nil {
		t.Fatal(err)
	}

	c = openTestCache(t, dir, st, 0, clock) // "restart"
	if c.Has(halfSHA) {
		t.Error("a partial download counts as present")
	}
	if !c.Has(kept) || goodSHA != kept {
		t.Error("committed artifact lost")
	}
	if !c.Has(orphanSHA) {
		t.Error("verified unindexed artifact was dropped")
	}
	if c.Has(liarSHA) {
		t.Error("file whose bytes do not match its name is still in the cache")
	}
	rows, err := st.ListArtifacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.SHA256)
	}
	slices.Sort(got)
	want := []string{kept, orphanSHA}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("index = %v, want %v (ghost row dropped, orphan indexed)", got, want)
	}
	// The partial survives for resume.
	if _, err := os.Stat(c.partialPath(halfSHA)); err != nil {
		t.Errorf("partial download removed on open: %v", err)
	}
}
