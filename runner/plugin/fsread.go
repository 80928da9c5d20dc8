package plugin

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// readOnlyFS is the file system a wasm plugin sees, mounted at "/": the
// fs_read paths (files, or folders with everything under them), read-only,
// plus the folders above them as listings of those paths only. Anything
// else does not open (permission denied), and a symlink is followed only
// when it stays inside an fs_read path. Names are fs.FS names: "proc/uptime".
type readOnlyFS struct {
	allowed []string // cleaned fs.FS names, sorted
	reals   []string // their real host paths (symlinks resolved), for containment
}

// newReadOnlyFS checks fs_read: absolute paths. nil when there are none,
// so the module gets no file system at all.
func newReadOnlyFS(paths []string) (*readOnlyFS, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	f := &readOnlyFS{}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("%q is not an absolute path", p)
		}
		name := strings.TrimPrefix(filepath.Clean(p), "/")
		if name == "" {
			name = "."
		}
		f.allowed = append(f.allowed, name)
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			real = filepath.Clean(p) // missing now: may appear later
		}
		f.reals = append(f.reals, real)
	}
	slices.Sort(f.allowed)
	return f, nil
}

// within reports whether name is p or below it.
func within(name, p string) bool {
	return p == "." || name == p || strings.HasPrefix(name, p+"/")
}

// Open opens an allowed file or folder read-only, or a folder above one as
// a listing of the allowed entries below it.
func (f *readOnlyFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	for _, a := range f.allowed {
		if within(name, a) {
			return f.openReal(name)
		}
	}
	var children []string
	for _, a := range f.allowed {
		if name == "." {
			children = append(children, strings.Split(a, "/")[0])
		} else if rest, ok := strings.CutPrefix(a, name+"/"); ok {
			children = append(children, strings.Split(rest, "/")[0])
		}
	}
	if len(children) == 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	slices.Sort(children)
	return &listingDir{name: name, children: slices.Compact(children)}, nil
}

// openReal opens the host file of name, refusing a symlink that leads out
// of every fs_read path.
func (f *readOnlyFS) openReal(name string) (fs.File, error) {
	host := "/" + name
	if name == "." {
		host = "/"
	}
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: unwrapPathErr(err)}
	}
	ok := false
	for _, r := range f.reals {
		if r == "/" || real == r || strings.HasPrefix(real, r+"/") {
			ok = true
			break
		}
	}
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	file, err := os.Open(real)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: unwrapPathErr(err)}
	}
	return file, nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// listingDir is a folder above the fs_read paths: it lists only the
// entries that lead to them.
type listingDir struct {
	name     string
	children []string
	read     int
}

func (d *listingDir) Stat() (fs.FileInfo, error) { return dirInfo{name: path.Base(d.name)}, nil }
func (d *listingDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: fs.ErrInvalid}
}
func (d *listingDir) Close() error { return nil }

// ReadDir lists the entries leading to fs_read paths, as they are on the
// host (an entry that does not exist is left out).
func (d *listingDir) ReadDir(n int) ([]fs.DirEntry, error) {
	var out []fs.DirEntry
	for d.read < len(d.children) && (n <= 0 || len(out) < n) {
		c := d.children[d.read]
		d.read++
		st, err := os.Stat("/" + path.Join(d.name, c))
		if err != nil {
			continue
		}
		out = append(out, fs.FileInfoToDirEntry(st))
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// dirInfo describes a listing folder.
type dirInfo struct{ name string }

func (i dirInfo) Name() string       { return i.name }
func (i dirInfo) Size() int64        { return 0 }
func (i dirInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (i dirInfo) ModTime() time.Time { return time.Time{} }
func (i dirInfo) IsDir() bool        { return true }
func (i dirInfo) Sys() any           { return nil }
