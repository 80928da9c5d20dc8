package ota

import (
	"archive/tar"
	"context"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/keystone-edge/keystone/internal/elftest"
	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// addRelease stages an arm64 agent release with the given files (shim
// optional) and returns their bytes by name.
func (r *testRepo) addRelease(t testing.TB, version string, withShim bool) map[string][]byte {
	t.Helper()
	rel := tufrepo.Release{Version: version, Agent: elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_AARCH64}, "agent "+version)}
	if withShim {
		rel.Shim = elftest.Write(t, "keystone-shim", elftest.Header{Machine: elf.EM_AARCH64}, "shim "+version)
	}
	if _, err := tufrepo.AddRelease(r.dir, rel, tufrepo.Options{}); err != nil {
		t.Fatalf("AddRelease: %v", err)
	}
	files := map[string][]byte{"keystone-agent": mustReadFile(t, rel.Agent)}
	if withShim {
		files["keystone-shim"] = mustReadFile(t, rel.Shim)
	}
	return files
}

// stageRaw lists data as target in the staged targets, as a publisher with
// the targets key could, bypassing AddRelease's checks.
func (r *testRepo) stageRaw(t testing.TB, target string, data []byte) {
	t.Helper()
	stagedPath := filepath.Join(r.dir, "staged", "targets.json")
	staged, err := metadata.Targets().FromFile(stagedPath)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := metadata.TargetFile().FromBytes(target, data, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	staged.Signed.Targets[target] = tf
	staged.Signed.Version += 100
	if err := staged.ToFile(stagedPath, true); err != nil {
		t.Fatal(err)
	}
	p := r.servedTarget(t, target, data)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustReadFile(t testing.TB, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// releaseFiles reads the files of an installed release, checking each is
// a regular file of mode 0755.
func releaseFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s is %v, want a regular file of mode 0755", e.Name(), fi.Mode())
		}
		out[e.Name()] = mustReadFile(t, filepath.Join(dir, e.Name()))
	}
	return out
}

// assertOnly fails unless dir holds exactly names: no partial folder or
// download left behind.
func assertOnly(t testing.TB, dir string, names ...string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

func TestFetchReleaseInstallsThePublishedRelease(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	want := r.addRelease(t, "1.4.0", true)
	agentOnly := r.addRelease(t, "1.5.0", false)
	r.publish(t, tufrepo.Options{})
	repo := r.client(t, t.TempDir())
	releases := filepath.Join(t.TempDir(), "root", "releases")

	dest := filepath.Join(releases, "1.4.0")
	if err := repo.FetchRelease(ctx, "1.4.0", "linux", "arm64", dest); err != nil {
		t.Fatalf("FetchRelease: %v", err)
	}
	got := releaseFiles(t, dest)
	if len(got) != 2 || string(got["keystone-agent"]) != string(want["keystone-agent"]) || string(got["keystone-shim"]) != string(want["keystone-shim"]) {
		t.Fatalf("installed %d files, differing from the published ones", len(got))
	}
	assertOnly(t, releases, "1.4.0")

	// Again: the complete folder is accepted as it is.
	if err := repo.FetchRelease(ctx, "1.4.0", "linux", "arm64", dest+"/"); err != nil {
		t.Fatalf("FetchRelease again: %v", err)
	}
	assertOnly(t, releases, "1.4.0")

	// A release without a shim installs the agent alone.
	if err := repo.FetchRelease(ctx, "1.5.0", "linux", "arm64", filepath.Join(releases, "1.5.0")); err != nil {
		t.Fatalf("FetchRelease 1.5.0: %v", err)
	}
	if got := releaseFiles(t, filepath.Join(releases, "1.5.0")); len(got) != 1 || string(got["keystone-agent"]) != string(agentOnly["keystone-agent"]) {
		t.Fatalf("1.5.0 installed %v", slices.Collect(mapKeys(got)))
	}

	// A folder holding other files is never overwritten.
	for _, tc := range []struct {
		name   string
		change func(dir string) error
	}{
		{"other bytes", func(d string) error {
			return os.WriteFile(filepath.Join(d, "keystone-agent"), []byte("patched"), 0o755)
		}},
		{"a missing shim", func(d string) error { return os.Remove(filepath.Join(d, "keystone-shim")) }},
		{"an extra file", func(d string) error { return os.WriteFile(filepath.Join(d, "notes"), nil, 0o644) }},
		{"a mode", func(d string) error { return os.Chmod(filepath.Join(d, "keystone-agent"), 0o644) }},
	} {
		d := filepath.Join(t.TempDir(), "1.4.0")
		if err := repo.FetchRelease(ctx, "1.4.0", "linux", "arm64", d); err != nil {
			t.Fatal(err)
		}
		if err := tc.change(d); err != nil {
			t.Fatal(err)
		}
		before := releaseFilesQuiet(d)
		err := repo.FetchRelease(ctx, "1.4.0", "linux", "arm64", d)
		wantReason(t, err, ReasonHashMismatch)
		if !errors.Is(err, ErrReleaseConflict) {
			t.Errorf("%s: error = %v, want ErrReleaseConflict", tc.name, err)
		}
		if after := releaseFilesQuiet(d); !equalFiles(before, after) {
			t.Errorf("%s: the existing folder was changed", tc.name)
		}
		assertOnly(t, filepath.Dir(d), "1.4.0")
	}
}

func mapKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func releaseFilesQuiet(dir string) map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fi, _ := e.Info()
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = fi.Mode().String() + string(data)
	}
	return out
}

func equalFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestFetchReleaseFailsClearly(t *testing.T) {
	ctx := context.Background()
	target := tufrepo.ReleaseTarget("1.4.0", "linux", "arm64")
	cases := []struct {
		name string
		// attack changes the repository after 1.4.0 linux/arm64 is published.
		attack           func(t *testing.T, r *testRepo, archive []byte)
		version, os, arc string
		maxSize          int64
		reason           Reason
		is               []error
		say              string
	}{
		{name: "missing version", version: "9.9.9", reason: ReasonDownloadFailed, is: []error{ErrNoRelease, ErrNoTarget}, say: "no agent release 9.9.9"},
		{name: "not a version", version: "../1.4.0", reason: ReasonDownloadFailed, is: []error{ErrNoRelease}, say: "not a semantic version"},
		{name: "wrong arch", arc: "riscv64", reason: ReasonDownloadFailed, is: []error{ErrNoReleaseBuild, ErrNoTarget}, say: "no build for linux/riscv64 (it has linux-arm64)"},
		{name: "wrong os", os: "windows", reason: ReasonDownloadFailed, is: []error{ErrNoReleaseBuild}, say: "windows/arm64"},
		{name: "bad platform name", arc: "arm64/../x", reason: ReasonDownloadFailed, is: []error{ErrNoReleaseBuild}},
		{name: "too large", maxSize: 100, reason: ReasonDownloadFailed, is: []error{ErrTooLarge}, say: "the limit 100"},
		{name: "tampered bytes", reason: ReasonHashMismatch, attack: func(t *testing.T, r *testRepo, archive []byte) {
			evil := slices.Clone(archive)
			evil[len(evil)/2] ^= 0xff
			writeServed(t, r, archive, evil)
		}},
		{name: "truncated file", reason: ReasonHashMismatch, attack: func(t *testing.T, r *testRepo, archive []byte) {
			writeServed(t, r, archive, archive[:len(archive)-10])
		}},
		{name: "metadata signed by the wrong key", reason: ReasonSignatureInvalid, attack: func(t *testing.T, r *testRepo, _ []byte) {
			other := newTestRepo(t)
			other.publish(t, tufrepo.Options{})
			other.publish(t, tufrepo.Options{})
			if err := os.WriteFile(r.served("timestamp.json"), mustReadFile(t, other.served("timestamp.json")), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "signed archive with an extra file", reason: ReasonUnsafeArchive, is: []error{ErrUnsafeArchive}, say: `"evil.sh"`,
			attack: signed([]entry{{name: "keystone-agent", body: "A"}, {name: "evil.sh", body: "rm -rf /"}})},
		{name: "signed archive with a symlink", reason: ReasonUnsafeArchive, is: []error{ErrUnsafeArchive}, say: "symbolic link",
			attack: signed([]entry{{name: "keystone-agent", typ: tar.TypeSymlink, linkname: "/bin/sh"}})},
		{name: "signed archive with path traversal", reason: ReasonUnsafeArchive, is: []error{ErrUnsafeArchive}, say: `"../../current/keystone-agent"`,
			attack: signed([]entry{{name: "keystone-agent", body: "A"}, {name: "../../current/keystone-agent", body: "evil"}})},
		{name: "signed archive that unpacks too large", maxSize: 64 << 10, reason: ReasonUnsafeArchive, is: []error{ErrUnsafeArchive, ErrTooLarge},
			attack: signed([]entry{{name: "keystone-agent", size: 1 << 20}})},
		{name: "signed truncated archive", reason: ReasonUnsafeArchive, is: []error{ErrUnsafeArchive},
			attack: func(t *testing.T, r *testRepo, _ []byte) {
				data := tarGzBytes(t, []entry{{name: "keystone-agent", size: 256 << 10}})
				r.stageRaw(t, target, data[:len(data)/2])
				r.publish(t, tufrepo.Options{})
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t)
			r.addRelease(t, "1.4.0", true)
			r.publish(t, tufrepo.Options{})
			repo, err := NewRepository(RepositoryConfig{RootFile: r.anchor, URL: r.srv.URL, CacheDir: t.TempDir(),
				AllowHTTP: true, MaxReleaseSize: tc.maxSize})
			if err != nil {
				t.Fatal(err)
			}
			if tc.attack != nil {
				targets, err := repo.Targets(ctx, target)
				if err != nil {
					t.Fatal(err)
				}
				archive := mustReadFile(t, servedPath(r, targets[target]))
				tc.attack(t, r, archive)
			}
			version, goos, goarch := or(tc.version, "1.4.0"), or(tc.os, "linux"), or(tc.arc, "arm64")
			releases := filepath.Join(t.TempDir(), "releases")
			err = repo.FetchRelease(ctx, version, goos, goarch, filepath.Join(releases, "1.4.0"))
			if err == nil {
				t.Fatalf("FetchRelease accepted %s", tc.name)
			}
			oe := wantReason(t, err, tc.reason)
			for _, is := range tc.is {
				if !errors.Is(err, is) {
					t.Errorf("error %v does not wrap %v", err, is)
				}
			}
			if !strings.Contains(oe.Error(), tc.say) {
				t.Errorf("error %q does not say %q", oe.Error(), tc.say)
			}
			assertOnly(t, releases) // nothing installed, nothing left behind
			t.Logf("refused: %v", err)
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// servedPath is the file a target's URL names in the served folder.
func servedPath(r *testRepo, t Target) string {
	return filepath.Join(tufrepo.ServedDir(r.dir), filepath.FromSlash(strings.TrimPrefix(t.URL, r.srv.URL+"/")))
}

// writeServed replaces the served release archive with data.
func writeServed(t *testing.T, r *testRepo, archive, data []byte) {
	t.Helper()
	p := r.servedTarget(t, tufrepo.ReleaseTarget("1.4.0", "linux", "arm64"), archive)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// signed publishes an archive of entries as release 1.4.0 linux/arm64.
func signed(entries []entry) func(t *testing.T, r *testRepo, _ []byte) {
	return func(t *testing.T, r *testRepo, _ []byte) {
		r.stageRaw(t, tufrepo.ReleaseTarget("1.4.0", "linux", "arm64"), tarGzBytes(t, entries))
		r.publish(t, tufrepo.Options{})
	}
}
