package ota

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// UnpackLimits bound what one archive may expand to (zip and gzip bombs).
// The agent sets them from [artifacts] max_unpacked_size and max_entries;
// a zero field takes the same default as agent.toml.
type UnpackLimits struct {
	// MaxBytes caps the total size of the unpacked files. 0 =
	// DefaultMaxUnpackedBytes.
	MaxBytes int64
	// MaxFiles caps the number of entries. 0 = DefaultMaxEntries.
	MaxFiles int
}

// Defaults of UnpackLimits.
const (
	DefaultMaxUnpackedBytes = 1 << 30
	DefaultMaxEntries       = 20000
)

func (l UnpackLimits) withDefaults() UnpackLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxUnpackedBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxEntries
	}
	return l
}

// ErrUnsafeArchive is the cause inside every UNSAFE_ARCHIVE *Error.
var ErrUnsafeArchive = errors.New("ota: unsafe archive")

// Unpack expands the .tar.gz/.tgz or .zip archive at path (the format is
// told by its first bytes) into the existing, empty folder dest. It refuses,
// with an UNSAFE_ARCHIVE *Error, entries with absolute paths or "..",
// symbolic or hard links resolving outside dest, device files and FIFOs,
// and archives past limits; nothing is ever written outside dest (writes go
// through an os.Root). Executable bits are kept: a file with any x bit
// becomes 0755, others 0644. On error dest may hold a partial tree: callers
// unpack into a temporary folder and rename it into place on success.
func Unpack(ctx context.Context, path, dest string, limits UnpackLimits) error {
	limits = limits.withDefaults()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	n, _ := io.ReadFull(f, magic)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return fmt.Errorf("open unpack folder: %w", err)
	}
	defer root.Close()
	u := &unpacker{root: root, dest: dest, limits: limits}
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		err = u.tarGz(ctx, f)
	case n == 4 && bytes.HasPrefix(magic, []byte("PK")) && (magic[2] == 3 || magic[2] == 5):
		fi, statErr := f.Stat()
		if statErr != nil {
			return fmt.Errorf("stat archive: %w", statErr)
		}
		err = u.zip(ctx, f, fi.Size())
	default:
		err = unsafef("not a .tar.gz, .tgz or .zip archive")
	}
	if err != nil {
		return err
	}
	return checkLinks(dest)
}

func unsafef(format string, args ...any) error {
	return &Error{Reason: ReasonUnsafeArchive, Err: fmt.Errorf("%w: "+format, append([]any{ErrUnsafeArchive}, args...)...)}
}

type unpacker struct {
	root   *os.Root
	dest   string
	limits UnpackLimits
	files  int
	bytes  int64
}

func (u *unpacker) tarGz(ctx context.Context, r io.Reader) error {
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 1<<16))
	if err != nil {
		return unsafef("gzip: %v", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, tar.ErrInsecurePath) {
			return unsafef("entry %q: %v", h.Name, err)
		}
		if err != nil {
			return unsafef("tar: %v", err)
		}
		name, err := u.entry(h.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = u.mkdir(name)
		case tar.TypeReg, tar.TypeRegA:
			// The declared size refuses a bomb before it is inflated; the
			// copy's own bound still holds for a header that lies.
			if h.Size > u.limits.MaxBytes-u.bytes {
				return unsafef("entry %q declares %d bytes, past the %d byte limit", h.Name, h.Size, u.limits.MaxBytes)
			}
			err = u.file(name, tr, h.FileInfo().Mode())
		case tar.TypeSymlink:
			err = u.symlink(name, h.Linkname)
		case tar.TypeLink:
			err = u.hardlink(name, h.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			err = unsafef("entry %q is a device file or FIFO", h.Name)
		default:
			err = unsafef("entry %q has unsupported type %q", h.Name, h.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

func (u *unpacker) zip(ctx context.Context, r io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return unsafef("zip: %v", err)
	}
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		name, err := u.entry(zf.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		mode := zf.Mode()
		switch {
		case mode.IsDir():
			err = u.mkdir(name)
		case mode&fs.ModeSymlink != 0:
			err = u.zipSymlink(name, zf)
		case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
			err = unsafef("entry %q is a device file, FIFO or socket", zf.Name)
		default:
			if zf.UncompressedSize64 > uint64(u.limits.MaxBytes) {
				return unsafef("entry %q declares %d bytes, past the %d byte limit", zf.Name, zf.UncompressedSize64, u.limits.MaxBytes)
			}
			err = u.zipFile(name, zf, mode)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (u *unpacker) zipFile(name string, zf *zip.File, mode fs.FileMode) error {
	rc, err := zf.Open()
	if err != nil {
		return unsafef("entry %q: %v", zf.Name, err)
	}
	defer rc.Close()
	return u.file(name, rc, mode)
}

func (u *unpacker) zipSymlink(name string, zf *zip.File) error {
	rc, err := zf.Open()
	if err != nil {
		return unsafef("entry %q: %v", zf.Name, err)
	}
	defer rc.Close()
	target, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return unsafef("entry %q: %v", zf.Name, err)
	}
	return u.symlink(name, string(target))
}

// entry counts an entry and returns its cleaned, local name.
func (u *unpacker) entry(raw string) (string, error) {
	u.files++
	if u.files > u.limits.MaxFiles {
		return "", unsafef("more than %d entries", u.limits.MaxFiles)
	}
	if raw == "" || strings.ContainsRune(raw, 0) {
		return "", unsafef("entry with an empty or invalid name")
	}
	if strings.HasPrefix(raw, "/") || filepath.IsAbs(raw) {
		return "", unsafef("entry %q has an absolute path", raw)
	}
	name := filepath.Clean(strings.TrimSuffix(raw, "/"))
	if name == "." {
		return name, nil
	}
	if !filepath.IsLocal(name) || hasDotDot(raw) {
		return "", unsafef("entry %q escapes the folder", raw)
	}
	return name, nil
}

func hasDotDot(p string) bool {
	for _, c := range strings.Split(filepath.ToSlash(p), "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

func (u *unpacker) mkdir(name string) error {
	if err := u.root.MkdirAll(name, 0o755); err != nil {
		return u.writeErr(name, err)
	}
	return nil
}

func (u *unpacker) parent(name string) error {
	if dir := filepath.Dir(name); dir != "." {
		return u.mkdir(dir)
	}
	return nil
}

func (u *unpacker) file(name string, r io.Reader, mode fs.FileMode) error {
	if err := u.parent(name); err != nil {
		return err
	}
	perm := fs.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	_ = u.root.Remove(name) // a later entry replaces an earlier one, never writes through it
	f, err := u.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return u.writeErr(name, err)
	}
	budget := u.limits.MaxBytes - u.bytes
	n, err := io.Copy(f, io.LimitReader(r, budget+1))
	u.bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if isDiskFull(err) {
			return &Error{Reason: ReasonDiskFull, Artifact: name, Err: err}
		}
		return unsafef("entry %q: %v", name, err)
	}
	if n > budget {
		return unsafef("unpacked size passes the %d byte limit", u.limits.MaxBytes)
	}
	// OpenFile's perm is filtered by the umask; set the bits we mean.
	if err := u.root.Chmod(name, perm); err != nil {
		return u.writeErr(name, err)
	}
	return nil
}

func (u *unpacker) symlink(name, target string) error {
	if target == "" || filepath.IsAbs(target) {
		return unsafef("symlink %q points to absolute or empty path %q", name, target)
	}
	if !filepath.IsLocal(filepath.Join(filepath.Dir(name), target)) {
		return unsafef("symlink %q points outside the folder (%q)", name, target)
	}
	if err := u.parent(name); err != nil {
		return err
	}
	_ = u.root.Remove(name)
	if err := u.root.Symlink(target, name); err != nil {
		return u.writeErr(name, err)
	}
	return nil
}

func (u *unpacker) hardlink(name, target string) error {
	clean := filepath.Clean(target)
	if filepath.IsAbs(target) || !filepath.IsLocal(clean) || hasDotDot(target) {
		return unsafef("hard link %q points outside the folder (%q)", name, target)
	}
	if err := u.parent(name); err != nil {
		return err
	}
	_ = u.root.Remove(name)
	if err := u.root.Link(clean, name); err != nil {
		return u.writeErr(name, err)
	}
	return nil
}

// writeErr classifies a failed write: a full disk, or a path that os.Root
// refused because it would leave the folder.
func (u *unpacker) writeErr(name string, err error) error {
	if isDiskFull(err) {
		return &Error{Reason: ReasonDiskFull, Artifact: name, Err: err}
	}
	return unsafef("entry %q: %v", name, err)
}

// checkLinks resolves every symlink under dest physically, following links
// it meets on the way, and refuses the tree if any resolves outside dest.
// Lexical checks at creation time cannot see chains such as a -> "." plus
// b -> "a/..", which only escape once both exist.
func checkLinks(dest string) error {
	return filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		rel, err := filepath.Rel(dest, p)
		if err != nil {
			return err
		}
		parent := splitPath(filepath.Dir(rel))
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if _, ok := follow(dest, parent, target, 0); !ok {
			return unsafef("symlink %q resolves outside the folder", rel)
		}
		return nil
	})
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(filepath.ToSlash(p), "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// follow resolves target from the folder stack (relative to dest),
// following the symlinks met on the way, and returns the folder stack it
// reaches, or ok = false when it leaves dest (or loops). Missing components
// are taken lexically.
func follow(dest string, stack []string, target string, depth int) (_ []string, ok bool) {
	if depth > 40 || filepath.IsAbs(target) {
		return nil, false
	}
	stack = append([]string(nil), stack...)
	for _, c := range strings.Split(filepath.ToSlash(target), "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return nil, false
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		p := filepath.Join(append([]string{dest}, stack...)...)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		next, err := os.Readlink(p)
		if err != nil {
			return nil, false
		}
		if stack, ok = follow(dest, stack[:len(stack)-1], next, depth+1); !ok {
			return nil, false
		}
	}
	return stack, true
}
