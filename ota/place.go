package ota

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
)

// VersionDir is the folder a component version is placed in:
// ComponentsDir/<name>/<version>.
func (f *Fetcher) VersionDir(name, version string) string {
	return filepath.Join(f.cfg.ComponentsDir, name, version)
}

// RemoveVersion deletes a placed version folder (after the version is
// uninstalled and no rollback needs it). Removing a missing one is not an
// error.
func (f *Fetcher) RemoveVersion(name, version string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.VersionDir(name, version)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s@%s: %w", name, version, err)
	}
	return nil
}

// place builds the version folder in a temporary sibling and renames it
// into place; a folder already there is left as it is.
func (f *Fetcher) place(ctx context.Context, r *recipes.Recipe) (err error) {
	name, version := r.Metadata.Name, r.Metadata.Version
	if !filepath.IsLocal(name) || !filepath.IsLocal(version) || strings.ContainsAny(name+version, `/\`) {
		return fmt.Errorf("component name %q or version %q is not a plain folder name", name, version)
	}
	final := f.VersionDir(name, version)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fail(classifyLocal(err), name, err)
	}
	// A crash may have left temporary folders of this component behind.
	if old, _ := filepath.Glob(filepath.Join(parent, ".tmp-*")); len(old) > 0 {
		for _, o := range old {
			_ = os.RemoveAll(o)
		}
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+version+"-")
	if err != nil {
		return fail(classifyLocal(err), name, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for _, a := range r.Artifacts {
		src := f.cfg.Cache.Path(strings.ToLower(a.SHA256))
		if a.Unpack {
			if err := Unpack(ctx, src, tmp, f.cfg.Unpack); err != nil {
				return fail(classifyLocal(err), a.URI, fmt.Errorf("unpack %s: %w", a.URI, err))
			}
			continue
		}
		file, err := artifactFileName(a.URI)
		if err != nil {
			return &Error{Reason: ReasonDownloadFailed, Artifact: a.URI, Err: err}
		}
		perm := os.FileMode(0o644)
		if a.Executable {
			perm = 0o755
		}
		if err := copyFile(src, filepath.Join(tmp, file), perm); err != nil {
			return fail(classifyLocal(err), a.URI, err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fail(classifyLocal(err), name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(classifyLocal(err), name, err)
	}
	return syncDir(parent)
}

func copyFile(src, dst string, perm os.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return err
	}
	if err = out.Chmod(perm); err != nil {
		return err
	}
	return out.Sync()
}
