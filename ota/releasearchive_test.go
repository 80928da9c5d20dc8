package ota

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tarGzBytes is writeTarGz into memory.
func tarGzBytes(t testing.TB, entries []entry) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "release.tar.gz")
	writeTarGz(t, p, entries)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// gzipBytes compresses raw as one gzip stream.
func gzipBytes(t testing.TB, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawTar is an uncompressed tar of one regular keystone-agent.
func rawTar(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "keystone-agent", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte("agent"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll runs readRelease, keeping what put is given.
func readAll(data []byte, max int64) (map[string]string, []string, error) {
	got := map[string]string{}
	names, err := readRelease(context.Background(), bytes.NewReader(data), max, func(name string, size int64, body io.Reader) error {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if int64(len(b)) != size {
			return errors.New("size differs from the header")
		}
		got[name] = string(b)
		return nil
	})
	return got, names, err
}

func TestReadReleaseTakesTheAgentAndShim(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		want    []string
	}{
		{"agent", []entry{{name: "keystone-agent", body: "A", mode: 0o755}}, []string{"keystone-agent"}},
		{"agent and shim", []entry{{name: "keystone-agent", body: "A"}, {name: "keystone-shim", body: "S"}}, []string{"keystone-agent", "keystone-shim"}},
		{"shim first", []entry{{name: "keystone-shim", body: "S"}, {name: "keystone-agent", body: "A"}}, []string{"keystone-shim", "keystone-agent"}},
		{"empty agent", []entry{{name: "keystone-agent"}}, []string{"keystone-agent"}},
	} {
		got, names, err := readAll(tarGzBytes(t, tc.entries), 1<<20)
		if err != nil || !slices.Equal(names, tc.want) {
			t.Errorf("%s: readRelease = %v, %v; want %v", tc.name, names, err, tc.want)
			continue
		}
		for _, e := range tc.entries {
			if got[e.name] != e.body {
				t.Errorf("%s: %s = %q, want %q", tc.name, e.name, got[e.name], e.body)
			}
		}
	}
	// GNU tar pads its records with zero blocks: still the format.
	padded := append(rawTar(t), make([]byte, 10240)...)
	if _, _, err := readAll(gzipBytes(t, padded), 1<<20); err != nil {
		t.Errorf("zero padding after the tar: %v", err)
	}
}

func TestReadReleaseRefusesAnythingElse(t *testing.T) {
	agent := entry{name: "keystone-agent", body: "agent", mode: 0o755}
	valid := tarGzBytes(t, []entry{agent})
	for _, tc := range []struct {
		name    string
		data    []byte
		want    string
		tooMuch bool
	}{
		{"extra file", tarGzBytes(t, []entry{agent, {name: "README", body: "hi"}}), `"README" (regular file): a release holds only`, false},
		{"folder", tarGzBytes(t, []entry{{name: "bin/", typ: tar.TypeDir}, agent}), `"bin/" (folder)`, false},
		{"file in a folder", tarGzBytes(t, []entry{{name: "bin/keystone-agent", body: "x"}}), `"bin/keystone-agent"`, false},
		{"dot slash", tarGzBytes(t, []entry{{name: "./keystone-agent", body: "x"}}), `"./keystone-agent"`, false},
		{"path traversal", tarGzBytes(t, []entry{{name: "../keystone-agent", body: "x"}}), `"../keystone-agent"`, false},
		{"absolute path", tarGzBytes(t, []entry{{name: "/usr/bin/keystone-agent", body: "x"}}), `"/usr/bin/keystone-agent"`, false},
		{"symlink", tarGzBytes(t, []entry{{name: "keystone-agent", typ: tar.TypeSymlink, linkname: "/bin/sh"}}), `"keystone-agent" is a symbolic link`, false},
		{"hard link", tarGzBytes(t, []entry{agent, {name: "keystone-shim", typ: tar.TypeLink, linkname: "keystone-agent"}}), `"keystone-shim" is a hard link`, false},
		{"folder named like the agent", tarGzBytes(t, []entry{{name: "keystone-agent", typ: tar.TypeDir}}), `is a folder`, false},
		{"fifo", tarGzBytes(t, []entry{{name: "keystone-agent", typ: tar.TypeFifo}}), `is a FIFO`, false},
		{"twice", tarGzBytes(t, []entry{agent, agent}), "appears twice", false},
		{"no agent", tarGzBytes(t, []entry{{name: "keystone-shim", body: "S"}}), "holds no keystone-agent", false},
		{"empty tar", tarGzBytes(t, nil), "holds no keystone-agent", false},
		{"too large", tarGzBytes(t, []entry{{name: "keystone-agent", size: 2 << 20}}), "byte limit", true},
		{"not gzip", rawTar(t), "not a gzip'd tar", false},
		{"truncated", valid[:len(valid)-12], "", false},
		{"truncated in the body", tarGzBytes(t, []entry{{name: "keystone-agent", size: 512 << 10}})[:200], "", false},
		{"data after the tar", gzipBytes(t, append(rawTar(t), "#!/bin/sh\n"...)), "data after the end of its tar", false},
		{"pax global header", paxGlobalRelease(t), "pax global header", false},
		{"second gzip member", append(slices.Clone(valid), gzipBytes(t, []byte("more"))...), "data after the end of its tar", false},
	} {
		_, _, err := readAll(tc.data, 1<<20)
		oe := wantReason(t, err, ReasonUnsafeArchive)
		if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(oe.Error(), tc.want) || errors.Is(err, ErrTooLarge) != tc.tooMuch {
			t.Errorf("%s: error = %v; want ErrUnsafeArchive saying %q (too large: %v)", tc.name, err, tc.want, tc.tooMuch)
		}
	}
}

func TestReadReleaseKeepsPutErrorsApartFromArchiveErrors(t *testing.T) {
	full := &Error{Reason: ReasonDiskFull, Err: errors.New("no space")}
	data := tarGzBytes(t, []entry{{name: "keystone-agent", body: "agent"}})
	_, err := readRelease(context.Background(), bytes.NewReader(data), 1<<20, func(string, int64, io.Reader) error { return full })
	if err != full {
		t.Errorf("put's error came back as %v", err)
	}
}

// paxGlobalRelease is a release preceded by a pax global header, which tar
// readers report as an entry of its own.
func paxGlobalRelease(t testing.TB) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "x"}}); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "keystone-agent", Typeflag: tar.TypeReg, Mode: 0o755, Size: 1}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte("A"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return gzipBytes(t, buf.Bytes())
}

// FuzzReadRelease feeds arbitrary bytes to the release reader: it must
// never panic, and whatever it accepts is exactly the format.
func FuzzReadRelease(f *testing.F) {
	f.Add(tarGzBytes(f, []entry{{name: "keystone-agent", body: "agent", mode: 0o755}}))
	f.Add(tarGzBytes(f, []entry{{name: "keystone-agent", body: "agent"}, {name: "keystone-shim", body: "shim"}}))
	f.Add(tarGzBytes(f, []entry{{name: "keystone-agent", typ: tar.TypeSymlink, linkname: "../x"}}))
	f.Add(tarGzBytes(f, []entry{{name: "../keystone-agent", body: "x"}}))
	f.Add(gzipBytes(f, append(rawTar(f), make([]byte, 1024)...)))
	f.Add(rawTar(f))
	f.Add(paxGlobalRelease(f))
	f.Add(append(tarGzBytes(f, []entry{{name: "keystone-agent", body: "A"}}), gzipBytes(f, make([]byte, 512))...))
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		got, names, err := readAll(data, max)
		if err != nil {
			if r, _ := ReasonOf(err); r != ReasonUnsafeArchive || !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("error %v is not UNSAFE_ARCHIVE", err)
			}
			return
		}
		if !slices.Contains(names, "keystone-agent") || len(names) > 2 || len(got) != len(names) {
			t.Fatalf("accepted %v", names)
		}
		var total int
		for _, n := range names {
			if n != "keystone-agent" && n != "keystone-shim" {
				t.Fatalf("accepted entry %q", n)
			}
			total += len(got[n])
		}
		if total > max {
			t.Fatalf("accepted %d bytes, limit %d", total, max)
		}
	})
}
