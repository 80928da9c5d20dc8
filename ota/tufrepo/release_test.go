package tufrepo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/keystone-edge/keystone/internal/elftest"
)

func initRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := Init(dir, Options{}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return dir
}

// servedTarget reads the served bytes of a staged target.
func servedTarget(t *testing.T, dir, target, sum string) []byte {
	t.Helper()
	d, base := filepath.Split(target)
	data, err := os.ReadFile(filepath.Join(ServedDir(dir), "targets", d, sum+"."+base))
	if err != nil {
		t.Fatalf("served target %s: %v", target, err)
	}
	return data
}

type tarEntry struct {
	hdr  tar.Header
	body string
}

func readTarGz(t *testing.T, data []byte) []tarEntry {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, tarEntry{*h, string(body)})
	}
}

func TestReleaseTarget(t *testing.T) {
	if got := ReleaseTarget("1.4.0", "linux", "arm64"); got != "keystone-agent/1.4.0/linux-arm64" {
		t.Errorf("ReleaseTarget = %q", got)
	}
}

func TestAddReleasePacksDeterministicallyAndPublishes(t *testing.T) {
	dir := initRepo(t)
	agent := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_AARCH64}, "agent body")
	shim := elftest.Write(t, "keystone-shim", elftest.Header{Machine: elf.EM_AARCH64}, "shim body")
	if err := os.Chmod(shim, 0o600); err != nil { // the archive's mode does not depend on the file's
		t.Fatal(err)
	}
	added, err := AddRelease(dir, Release{Version: "1.4.0", Agent: agent, Shim: shim}, Options{})
	if err != nil {
		t.Fatalf("AddRelease: %v", err)
	}
	if added.Target != "keystone-agent/1.4.0/linux-arm64" || added.OS != "linux" || added.Arch != "arm64" ||
		strings.Join(added.Files, ",") != "keystone-agent,keystone-shim" {
		t.Fatalf("AddRelease = %+v", added)
	}
	data := servedTarget(t, dir, added.Target, added.SHA256)
	if int64(len(data)) != added.Length || sha(data) != added.SHA256 {
		t.Fatalf("served archive: %d bytes sha256 %s, AddRelease said %d %s", len(data), sha(data), added.Length, added.SHA256)
	}
	entries := readTarGz(t, data)
	if len(entries) != 2 {
		t.Fatalf("archive has %d entries, want 2", len(entries))
	}
	for i, want := range []struct{ name, path string }{{"keystone-agent", agent}, {"keystone-shim", shim}} {
		e := entries[i]
		body, _ := os.ReadFile(want.path)
		if e.hdr.Name != want.name || e.hdr.Typeflag != tar.TypeReg || e.hdr.Mode != 0o755 || e.body != string(body) ||
			e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "" || e.hdr.ModTime.Unix() != 0 {
			t.Errorf("entry %d = %+v", i, e.hdr)
		}
	}

	// The same binaries again, from another folder with other mtimes: the
	// same bytes, nothing new to sign.
	staged, _ := metadata.Targets().FromFile(stagedTargets(dir))
	agent2 := filepath.Join(t.TempDir(), "agent-copy")
	writeFile(t, agent2, mustRead(t, agent))
	again, err := AddRelease(dir, Release{Version: "1.4.0", OS: "linux", Arch: "arm64", Agent: agent2, Shim: shim}, Options{})
	if err != nil || again.SHA256 != added.SHA256 {
		t.Fatalf("AddRelease again = %+v, %v; want the same archive", again, err)
	}
	if st, _ := metadata.Targets().FromFile(stagedTargets(dir)); st.Signed.Version != staged.Signed.Version {
		t.Errorf("re-adding the same release bumped staged targets %d -> %d", staged.Signed.Version, st.Signed.Version)
	}

	// Other bytes for the same release are refused; another platform is not.
	other := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_AARCH64}, "rebuilt")
	if _, err := AddRelease(dir, Release{Version: "1.4.0", Agent: other}, Options{}); !errors.Is(err, ErrImmutable) {
		t.Errorf("other bytes for 1.4.0: error = %v, want ErrImmutable", err)
	}
	amd := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_X86_64}, "agent body")
	if a, err := AddRelease(dir, Release{Version: "1.4.0", Agent: amd}, Options{}); err != nil || a.Target != "keystone-agent/1.4.0/linux-amd64" {
		t.Fatalf("amd64 build: %+v, %v", a, err)
	}
	p, err := Publish(dir, Options{})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	pub, _ := loadPublished(dir)
	for _, target := range []string{"keystone-agent/1.4.0/linux-arm64", "keystone-agent/1.4.0/linux-amd64"} {
		if pub.targets.Signed.Targets[target] == nil {
			t.Errorf("published targets v%d do not list %s", p.Targets, target)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestAddReleaseRefusesWhatWouldBrickADevice(t *testing.T) {
	dir := initRepo(t)
	arm := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_AARCH64}, "")
	amd := elftest.Write(t, "keystone-shim", elftest.Header{Machine: elf.EM_X86_64}, "")
	text := filepath.Join(t.TempDir(), "keystone-agent")
	writeFile(t, text, []byte("not a binary\n"))
	huge := elftest.Write(t, "keystone-agent", elftest.Header{Machine: elf.EM_AARCH64}, "")
	if err := os.Truncate(huge, MaxReleaseBytes+1); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rel  Release
		is   error
		want string
	}{
		{"text file", Release{Version: "1.0.0", Agent: text}, ErrNotExecutable, "not an ELF executable for linux"},
		{"wrong arch asked", Release{Version: "1.0.0", Arch: "amd64", Agent: arm}, ErrNotExecutable, "built for linux/arm64, not linux/amd64"},
		{"wrong os asked", Release{Version: "1.0.0", OS: "windows", Agent: arm}, ErrNotExecutable, "not windows/arm64"},
		{"shim of another arch", Release{Version: "1.0.0", Agent: arm, Shim: amd}, ErrNotExecutable, "the agent for linux/arm64"},
		{"shim not a binary", Release{Version: "1.0.0", Agent: arm, Shim: text}, ErrNotExecutable, "shim"},
		{"too large", Release{Version: "1.0.0", Agent: huge}, ErrReleaseTooLarge, "more than the"},
		{"no agent", Release{Version: "1.0.0"}, nil, "no agent binary"},
		{"v prefix", Release{Version: "v1.0.0", Agent: arm}, nil, "not a semantic version"},
		{"path in version", Release{Version: "../1.0.0", Agent: arm}, nil, "not a semantic version"},
	} {
		_, err := AddRelease(dir, tc.rel, Options{})
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v; want %v saying %q", tc.name, err, tc.is, tc.want)
		}
	}
	staged, _ := metadata.Targets().FromFile(stagedTargets(dir))
	if len(staged.Signed.Targets) != 0 {
		t.Errorf("refused releases left staged targets: %v", staged.Signed.Targets)
	}
}

func TestAddRefusesTheReleaseName(t *testing.T) {
	dir := initRepo(t)
	recipe := filepath.Join(t.TempDir(), "r.recipe.toml")
	writeFile(t, recipe, recipeText(ReleaseName, "1.0.0", nil))
	if _, err := Add(dir, recipe, nil, Options{}); err == nil || !strings.Contains(err.Error(), "reserved for agent releases") {
		t.Fatalf("Add of a component named %s: error = %v", ReleaseName, err)
	}
}
