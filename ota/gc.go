package ota

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// GCResult says what a garbage collection did.
type GCResult struct {
	Removed []string // sha256 of removed artifacts, least recently used first
	Freed   int64    // bytes removed
	Size    int64    // bytes left in the cache
	// OverLimit is true when the artifacts still needed alone exceed the
	// limit: they are kept, and the cache stays above it.
	OverLimit bool
}

// GC shrinks the cache to its limit by removing the least recently used
// artifacts first, never one whose sha256 is in keep (what the installed
// versions and the keep_versions previous ones need: the caller knows
// them). Partial downloads of artifacts not in keep are removed too.
func (c *Cache) GC(ctx context.Context, keep map[string]bool) (GCResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rows, err := c.cfg.Index.ListArtifacts(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc artifacts: %w", err)
	}
	var res GCResult
	for _, a := range rows {
		res.Size += a.Size
	}
	for _, a := range rows {
		if c.cfg.Limit <= 0 || res.Size <= c.cfg.Limit {
			break
		}
		if keep[a.SHA256] {
			continue
		}
		if err := c.remove(ctx, a.SHA256); err != nil {
			return res, fmt.Errorf("gc artifacts: %w", err)
		}
		res.Removed = append(res.Removed, a.SHA256)
		res.Freed += a.Size
		res.Size -= a.Size
	}
	res.OverLimit = c.cfg.Limit > 0 && res.Size > c.cfg.Limit
	if res.OverLimit {
		c.log.Warn("artifacts still needed exceed the cache limit", "size", res.Size, "limit", c.cfg.Limit)
	}
	entries, err := os.ReadDir(c.partialDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("gc partial downloads: %w", err)
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			if err := os.Remove(c.partialPath(e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return res, fmt.Errorf("gc partial downloads: %w", err)
			}
		}
	}
	return res, nil
}
