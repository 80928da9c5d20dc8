package provision

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// checkInside refuses to write through a symbolic link that leads out of
// root: an image whose etc/keystone points at the host's /etc/keystone
// must not get the host's files replaced.
func checkInside(root string, items []item) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	dirs := map[string]bool{DataDir: true}
	for _, it := range items {
		dirs[path.Dir(it.dev)] = true
	}
	for dir := range dirs {
		// The deepest part of dir that exists must resolve inside root.
		p := inRoot(root, dir)
		for {
			if _, err := os.Lstat(p); err == nil {
				break
			}
			p = filepath.Dir(p)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return err
		}
		if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
			return fmt.Errorf("%s leads to %s, outside the root folder %s (a symbolic link): refusing to write there", p, real, root)
		}
	}
	return nil
}

// write makes the folders and writes every item, each file atomically
// (a temporary file beside it, synced, then renamed), with its mode and
// owner.
func write(root string, acct Account, items []item, res *Result) error {
	owner := func(owned bool) (int, int, string) {
		if owned {
			return acct.UID, acct.GID, acct.User + ":" + acct.Group
		}
		return 0, 0, "root:root"
	}
	for _, d := range []struct {
		dev   string
		mode  os.FileMode
		owned bool
	}{{ConfigDir, modeDir, false}, {TrustDir, modeDir, false}, {TUFDir, modeDir, false}, {DataDir, modeDataDir, true}} {
		if d.dev == TUFDir && !hasItemIn(items, TUFDir) {
			continue
		}
		p := inRoot(root, d.dev)
		if err := os.MkdirAll(p, d.mode); err != nil {
			return err
		}
		uid, gid, name := owner(d.owned)
		if err := chmodChown(p, d.mode, uid, gid); err != nil {
			return err
		}
		res.Files = append(res.Files, File{Path: d.dev + "/", Mode: d.mode | os.ModeDir, Owner: name})
	}
	for _, it := range items {
		p := inRoot(root, it.dev)
		uid, gid, name := owner(it.owned)
		if it.keep {
			if err := chmodChown(p, it.mode, uid, gid); err != nil {
				return err
			}
		} else if err := writeFile(p, it.data, it.mode, uid, gid); err != nil {
			return err
		}
		res.Files = append(res.Files, File{Path: it.dev, Mode: it.mode, Owner: name, Kept: it.keep})
	}
	return nil
}

func hasItemIn(items []item, dir string) bool {
	for _, it := range items {
		if path.Dir(it.dev) == dir {
			return true
		}
	}
	return false
}

func writeFile(p string, data []byte, mode os.FileMode, uid, gid int) (retErr error) {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if retErr != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// Mode and owner before the bytes: a key is never readable by others,
	// not even for a moment.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := chown(f.Chown, tmp, uid, gid); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func chmodChown(p string, mode os.FileMode, uid, gid int) error {
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	return chown(func(u, g int) error { return os.Lchown(p, u, g) }, p, uid, gid)
}

// chown sets the owner, explaining the failure of an unprivileged run.
func chown(do func(uid, gid int) error, p string, uid, gid int) error {
	err := do(uid, gid)
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("give %s to uid %d gid %d: %w (provisioning sets owners: run it as root, or under fakeroot when building an image)", p, uid, gid, err)
	}
	return err
}
