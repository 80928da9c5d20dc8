package ota

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// entry is one archive member for the archive builders below.
type entry struct {
	name     string
	body     string
	mode     int64
	typ      byte   // tar type; 0 = regular file
	linkname string // symlink or hard link target
	size     int64  // >0: a body of this many zero bytes instead of body
}

func writeTarGz(t testing.TB, path string, entries []entry) {
	t.Helper()
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.linkname}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
			if e.size > 0 {
				h.Size = e.size
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if e.size > 0 {
				if _, err := tw.Write(make([]byte, e.size)); err != nil {
					t.Fatal(err)
				}
			} else if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeZip(t testing.TB, path string, entries []entry) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestSpeed)
	})
	for _, e := range entries {
		mode := fs.FileMode(e.mode)
		if mode == 0 {
			mode = 0o644
		}
		body := []byte(e.body)
		switch e.typ {
		case tar.TypeSymlink:
			mode |= fs.ModeSymlink
			body = []byte(e.linkname)
		case tar.TypeChar:
			mode |= fs.ModeDevice | fs.ModeCharDevice
		case tar.TypeDir:
			mode |= fs.ModeDir
		}
		if e.size > 0 {
			body = make([]byte, e.size)
		}
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree lists every path under dir (relative, sorted), with "@" marking symlinks.
func tree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			rel += "@"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestUnpackKeepsLayoutAndExecutableBits(t *testing.T) {
	for _, format := range []string{"tgz", "zip"} {
		t.Run(format, func(t *testing.T) {
			base := t.TempDir()
			archive := filepath.Join(base, "a."+format)
			entries := []entry{
				{name: "bin/", typ: tar.TypeDir, mode: 0o755},
				{name: "bin/hello", body: "#!/bin/sh\necho hi\n", mode: 0o755},
				{name: "etc/config.txt", body: "x=1\n", mode: 0o600},
				{name: "./run", typ: tar.TypeSymlink, linkname: "bin/hello"},
				{name: "etc/up", typ: tar.TypeSymlink, linkname: "../bin"},
			}
			if format == "tgz" {
				entries = append(entries, entry{name: "bin/hello2", typ: tar.TypeLink, linkname: "bin/hello"})
				writeTarGz(t, archive, entries)
			} else {
				writeZip(t, archive, entries)
			}
			dest := filepath.Join(base, "out")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := Unpack(context.Background(), archive, dest, UnpackLimits{}); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			fi, err := os.Stat(filepath.Join(dest, "bin/hello"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("bin/hello mode = %v, want 0755", fi.Mode().Perm())
			}
			fi, err = os.Stat(filepath.Join(dest, "etc/config.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("etc/config.txt mode = %v, want 0644", fi.Mode().Perm())
			}
			got, err := os.ReadFile(filepath.Join(dest, "run"))
			if err != nil || string(got) != "#!/bin/sh\necho hi\n" {
				t.Errorf("run via symlink = %q, %v", got, err)
			}
			if _, err := os.Stat(filepath.Join(dest, "etc/up/hello")); err != nil {
				t.Errorf("relative symlink inside the folder: %v", err)
			}
			if format == "tgz" {
				a, _ := os.Stat(filepath.Join(dest, "bin/hello"))
				b, err := os.Stat(filepath.Join(dest, "bin/hello2"))
				if err != nil || !os.SameFile(a, b) {
					t.Errorf("hard link not made: %v", err)
				}
			}
		})
	}
}

func TestUnpackRefusesUnsafeArchives(t *testing.T) {
	cases := []struct {
		name    string
		format  string
		entries []entry
		limits  UnpackLimits
		want    string
	}{
		{"zip-slip", "zip", []entry{{name: "ok.txt", body: "ok"}, {name: "../evil.txt", body: "pwned"}}, UnpackLimits{}, "escapes"},
		{"tar-slip", "tgz", []entry{{name: "a/../../evil.txt", body: "pwned"}}, UnpackLimits{}, "escapes"},
		{"absolute-tar", "tgz", []entry{{name: "/tmp/keystone-evil.txt", body: "pwned"}}, UnpackLimits{}, "absolute"},
		{"absolute-zip", "zip", []entry{{name: "/tmp/keystone-evil.txt", body: "pwned"}}, UnpackLimits{}, "absolute"},
		{"symlink-escape", "tgz", []entry{{name: "link", typ: tar.TypeSymlink, linkname: "../../"}, {name: "link/evil.txt", body: "pwned"}}, UnpackLimits{}, "outside"},
		{"symlink-absolute", "zip", []entry{{name: "etc", typ: tar.TypeSymlink, linkname: "/etc"}}, UnpackLimits{}, "absolute"},
		{"symlink-chain", "tgz", []entry{
			{name: "b", typ: tar.TypeSymlink, linkname: "a/.."},
			{name: "a", typ: tar.TypeSymlink, linkname: "."},
			{name: "b/evil.txt", body: "pwned"},
		}, UnpackLimits{}, "escapes"},
		{"symlink-chain-dangling", "tgz", []entry{
			{name: "b", typ: tar.TypeSymlink, linkname: "a/../evil-target"},
			{name: "a", typ: tar.TypeSymlink, linkname: "."},
		}, UnpackLimits{}, "resolves outside"},
		{"hardlink-escape", "tgz", []entry{{name: "passwd", typ: tar.TypeLink, linkname: "../../../etc/passwd"}}, UnpackLimits{}, "outside"},
		{"device", "tgz", []entry{{name: "null", typ: tar.TypeChar}}, UnpackLimits{}, "device"},
		{"fifo", "tgz", []entry{{name: "pipe", typ: tar.TypeFifo}}, UnpackLimits{}, "device"},
		{"device-zip", "zip", []entry{{name: "null", typ: tar.TypeChar}}, UnpackLimits{}, "device"},
		{"bomb-tgz", "tgz", []entry{{name: "zeros", size: 24 << 20}}, UnpackLimits{MaxBytes: 4 << 20}, "limit"},
		{"bomb-zip", "zip", []entry{{name: "zeros", size: 24 << 20}}, UnpackLimits{MaxBytes: 4 << 20}, "limit"},
		{"bomb-zip-many-small", "zip", manyFiles(10, 1<<20), UnpackLimits{MaxBytes: 4 << 20}, "limit"},
		{"too-many-files", "tgz", manyFiles(200, 0), UnpackLimits{MaxFiles: 100}, "entries"},
		{"not-an-archive", "tgz", nil, UnpackLimits{}, "not a .tar.gz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			parent := filepath.Join(base, "parent")
			dest := filepath.Join(parent, "inner", "dest")
			if err := os.MkdirAll(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			archive := filepath.Join(base, "archive")
			switch {
			case tc.entries == nil:
				if err := os.WriteFile(archive, []byte("plain text, not an archive"), 0o644); err != nil {
					t.Fatal(err)
				}
			case tc.format == "zip":
				writeZip(t, archive, tc.entries)
			default:
				writeTarGz(t, archive, tc.entries)
			}
			before := tree(t, base)
			err := Unpack(context.Background(), archive, dest, tc.limits)
			if err == nil {
				t.Fatal("Unpack succeeded, want UNSAFE_ARCHIVE")
			}
			var oe *Error
			if !errors.As(err, &oe) || oe.Reason != ReasonUnsafeArchive || !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("err = %v, want reason %s", err, ReasonUnsafeArchive)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
			// Nothing may appear outside dest: the tree outside it is unchanged.
			var outside []string
			for _, p := range tree(t, base) {
				if !strings.HasPrefix(p, filepath.Join("parent", "inner", "dest")+"/") {
					outside = append(outside, p)
				}
			}
			if strings.Join(outside, "\n") != strings.Join(before, "\n") {
				t.Errorf("files outside dest changed:\nbefore %v\nafter  %v", before, outside)
			}
			if _, err := os.Lstat("/tmp/keystone-evil.txt"); err == nil {
				t.Error("/tmp/keystone-evil.txt was written")
			}
		})
	}
}

func manyFiles(n int, size int64) []entry {
	out := make([]entry, n)
	for i := range out {
		out[i] = entry{name: "d/f" + strconv.Itoa(i), size: size}
	}
	return out
}
