package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/keystone-edge/keystone/store"
)

// ArtifactIndex is the part of the store the cache keeps its index in;
// *store.Store implements it.
type ArtifactIndex interface {
	PutArtifact(ctx context.Context, a store.Artifact) error
	TouchArtifact(ctx context.Context, sha256 string, at time.Time) error
	ListArtifacts(ctx context.Context) ([]store.Artifact, error) // least recently used first
	DeleteArtifact(ctx context.Context, sha256 string) error
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	// Dir is the cache folder (data_dir/artifacts). Required.
	Dir string
	// Index records sizes and last use. Required.
	Index ArtifactIndex
	// Limit is the size GC shrinks the cache to ([artifacts] cache_limit).
	// 0 = no limit.
	Limit int64
	// Now is the clock for last-use times. nil = time.Now.
	Now func() time.Time
	// Logger receives recovery and GC notes. nil = discard.
	Logger *slog.Logger
}

// Cache is the content-addressed artifact cache: Dir/<sha256> holds
// verified bytes only. Downloads grow in Dir/.partial/<sha256> and are
// renamed into place after their digest is checked and the file synced, so
// a crash never leaves a half-written file under a final name. It is safe
// for concurrent use.
type Cache struct {
	cfg CacheConfig
	log *slog.Logger
	mu  sync.Mutex // orders commits, removals and GC
}

// OpenCache opens (creating) the cache folder and reconciles it with the
// index after a crash: index rows whose file is gone are dropped, and a
// final-named file the index does not know is re-hashed, then indexed or
// removed.
func OpenCache(ctx context.Context, cfg CacheConfig) (*Cache, error) {
	if cfg.Dir == "" || cfg.Index == nil {
		return nil, errors.New("open artifact cache: Dir and Index are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{cfg: cfg, log: log}
	if err := os.MkdirAll(c.partialDir(), 0o755); err != nil {
		return nil, fmt.Errorf("open artifact cache: %w", err)
	}
	if err := c.recover(ctx); err != nil {
		return nil, fmt.Errorf("open artifact cache: %w", err)
	}
	return c, nil
}

// Path is where the verified bytes of sha256 live once present.
func (c *Cache) Path(sha256 string) string { return filepath.Join(c.cfg.Dir, sha256) }

func (c *Cache) partialDir() string               { return filepath.Join(c.cfg.Dir, ".partial") }
func (c *Cache) partialPath(sha256 string) string { return filepath.Join(c.partialDir(), sha256) }

// Has reports whether the verified artifact is present.
func (c *Cache) Has(sha256 string) bool {
	fi, err := os.Stat(c.Path(sha256))
	return err == nil && fi.Mode().IsRegular()
}

// Touch records a use of a present artifact now.
func (c *Cache) Touch(ctx context.Context, sha256 string) error {
	if err := c.cfg.Index.TouchArtifact(ctx, sha256, c.cfg.Now()); err != nil {
		return fmt.Errorf("touch artifact %s: %w", sha256, err)
	}
	return nil
}

// commit moves a verified partial download into place: fsync the file,
// rename, fsync the folder, then index it.
func (c *Cache) commit(ctx context.Context, sha256 string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	src := c.partialPath(sha256)
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("commit artifact %s: %w", sha256, err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return fail(classifyLocal(err), sha256, fmt.Errorf("commit artifact: %w", err))
	}
	if err := os.Chmod(src, 0o444); err != nil {
		return fmt.Errorf("commit artifact %s: %w", sha256, err)
	}
	if err := os.Rename(src, c.Path(sha256)); err != nil {
		return fail(classifyLocal(err), sha256, fmt.Errorf("commit artifact: %w", err))
	}
	if err := syncDir(c.cfg.Dir); err != nil {
		return fmt.Errorf("commit artifact %s: %w", sha256, err)
	}
	if err := c.cfg.Index.PutArtifact(ctx, store.Artifact{SHA256: sha256, Size: fi.Size(), LastUsed: c.cfg.Now()}); err != nil {
		return fmt.Errorf("commit artifact %s: %w", sha256, err)
	}
	return nil
}

// verify re-hashes a present artifact; a corrupt one is removed and fails
// HASH_MISMATCH.
func (c *Cache) verify(ctx context.Context, sha string) error {
	got, _, err := hashFile(c.Path(sha))
	if err != nil {
		return fmt.Errorf("verify artifact %s: %w", sha, err)
	}
	if got != sha {
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.remove(ctx, sha); err != nil {
			return err
		}
		return &Error{Reason: ReasonHashMismatch, Artifact: sha, Err: errors.New("cached bytes changed since download")}
	}
	return nil
}

// remove deletes an artifact's file, then its index row. c.mu is held.
func (c *Cache) remove(ctx context.Context, sha256 string) error {
	if err := os.Remove(c.Path(sha256)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove artifact %s: %w", sha256, err)
	}
	if err := c.cfg.Index.DeleteArtifact(ctx, sha256); err != nil {
		return fmt.Errorf("remove artifact %s: %w", sha256, err)
	}
	return nil
}

func (c *Cache) recover(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	rows, err := c.cfg.Index.ListArtifacts(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, a := range rows {
		fi, err := os.Stat(c.Path(a.SHA256))
		if err != nil || fi.Size() != a.Size {
			c.log.Warn("artifact in the index is missing or of the wrong size; forgetting it", "sha256", a.SHA256)
			if err := c.remove(ctx, a.SHA256); err != nil {
				return err
			}
			continue
		}
		known[a.SHA256] = true
	}
	entries, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !isSHA256Hex(name) || known[name] || !e.Type().IsRegular() {
			continue
		}
		got, size, err := hashFile(c.Path(name))
		if err != nil {
			return err
		}
		if got != name {
			c.log.Warn("unindexed artifact does not match its name; removing it", "sha256", name)
			if err := os.Remove(c.Path(name)); err != nil {
				return err
			}
			continue
		}
		if err := c.cfg.Index.PutArtifact(ctx, store.Artifact{SHA256: name, Size: size, LastUsed: c.cfg.Now()}); err != nil {
			return err
		}
	}
	return nil
}

// Size returns the bytes the indexed artifacts take.
func (c *Cache) Size(ctx context.Context) (int64, error) {
	rows, err := c.cfg.Index.ListArtifacts(ctx)
	if err != nil {
		return 0, fmt.Errorf("artifact cache size: %w", err)
	}
	var n int64
	for _, a := range rows {
		n += a.Size
	}
	return n, nil
}

func hashFile(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	size, err = io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
