package agent

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
)

// writeArchive writes a .tar.gz of entries (name -> size of zeros) and
// returns its path and sha256. Zeros compress about a thousandfold, so a
// small file inflates past a small limit: a gzip bomb in miniature.
func writeArchive(t *testing.T, entries map[string]int64) (path, sum string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "bundle.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(gz)
	for name, size := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(tw, zeros{}, size); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []io.Closer{tw, gz, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// unpackRequest deploys one component whose artifact is the archive.
func unpackRequest(name, archive, sum string) api.DeploymentRequest {
	text := recipeText(name, "1.0.0", "exec sleep 1000") +
		fmt.Sprintf("[[artifacts]]\nuri = %q\nsha256 = %q\nunpack = true\n", "file://"+archive, sum)
	return api.DeploymentRequest{
		Manifest: manifestText("", name+"@1.0.0"),
		Files:    map[string][]byte{name + ".recipe.toml": []byte(text)},
	}
}

// [artifacts] max_unpacked_size and max_entries reach the unpacker: an
// archive inflating past the first, or holding more entries than the
// second, fails the deployment as UNSAFE_ARCHIVE and leaves no version
// folder, finished or partial; one within both is installed.
func TestArchiveLimitsFromTheConfiguration(t *testing.T) {
	cfg := agentConfig(t, "[artifacts]\nmax_unpacked_size = \"1MiB\"\nmax_entries = 10\n")
	a := startAgent(t, cfg, Options{})
	many := map[string]int64{}
	for i := range 11 {
		many[fmt.Sprintf("f%02d", i)] = 0
	}
	for _, tc := range []struct {
		name    string
		entries map[string]int64
		want    string
	}{
		{"com.example.bomb", map[string]int64{"zeros": 8 << 20}, "byte limit"},
		{"com.example.many", many, "more than 10 entries"},
	} {
		archive, sum := writeArchive(t, tc.entries)
		d := a.deployAndWait(unpackRequest(tc.name, archive, sum))
		if d.Status != "FAILED" || d.ErrorCode != "UNSAFE_ARCHIVE" || !strings.Contains(d.Error, tc.want) {
			t.Errorf("%s: %s %s %q, want FAILED UNSAFE_ARCHIVE saying %q", tc.name, d.Status, d.ErrorCode, d.Error, tc.want)
		}
		if left, _ := os.ReadDir(filepath.Join(cfg.DataPaths().Components, tc.name)); len(left) > 0 {
			t.Errorf("%s: left in its components folder: %v", tc.name, left)
		}
	}
	archive, sum := writeArchive(t, map[string]int64{"a": 512 << 10, "b": 0})
	if d := a.deployAndWait(unpackRequest("com.example.fits", archive, sum)); d.Status != "SUCCEEDED" {
		t.Fatalf("an archive within the limits: %s %s %s\nlogs:\n%s", d.Status, d.ErrorCode, d.Error, a.logs)
	}
}
