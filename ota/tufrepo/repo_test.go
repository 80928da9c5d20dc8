package tufrepo

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func recipeText(name, version string, artifacts map[string][]byte) []byte {
	var b strings.Builder
	b.WriteString("format = 1\n[metadata]\nname = \"" + name + "\"\nversion = \"" + version + "\"\nkind = \"process\"\n")
	for file, data := range artifacts {
		b.WriteString("[[artifacts]]\nuri = \"repo:" + ArtifactTarget(name, version, file) + "\"\nsha256 = \"" + sha(data) + "\"\n")
	}
	b.WriteString("[lifecycle.run]\ncommand = \"./hello\"\n")
	return []byte(b.String())
}

func TestInitKeepsKeysPrivateAndOutOfTheServedFolder(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, Options{}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	fi, err := os.Stat(keysDir(dir))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("keys folder mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	for _, role := range Roles {
		fi, err := os.Stat(keyPath(dir, role))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s key mode = %v (%v), want 0600", role, fi.Mode().Perm(), err)
		}
	}
	err = filepath.WalkDir(ServedDir(dir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if data, _ := os.ReadFile(p); strings.Contains(string(data), "PRIVATE KEY") {
			t.Errorf("served file %s holds a private key", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"1.root.json", "root.json", "timestamp.json", "1.snapshot.json", "1.targets.json"} {
		if _, err := os.Stat(filepath.Join(ServedDir(dir), f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	root, err := metadata.Root().FromFile(RootFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(root.Signed.Expires); d < 360*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("root expires in %v, want about a year", d)
	}
	if err := Init(dir, Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("second Init: %v, want ErrExists", err)
	}
}

func TestAddAndPublish(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	art := []byte("artifact bytes")
	writeFile(t, filepath.Join(src, "hello.tar.gz"), art)
	writeFile(t, filepath.Join(src, "hello.recipe.toml"), recipeText("com.example.hello", "1.2.0", map[string][]byte{"hello.tar.gz": art}))

	added, err := Add(dir, filepath.Join(src, "hello.recipe.toml"), []string{filepath.Join(src, "hello.tar.gz")}, Options{})
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	want := []string{"com.example.hello/1.2.0/component.recipe.toml", "com.example.hello/1.2.0/hello.tar.gz"}
	if strings.Join(added.Targets, ",") != strings.Join(want, ",") {
		t.Errorf("targets = %v, want %v", added.Targets, want)
	}
	served := filepath.Join(ServedDir(dir), "targets", "com.example.hello", "1.2.0", sha(art)+".hello.tar.gz")
	if got, err := os.ReadFile(served); err != nil || string(got) != string(art) {
		t.Errorf("artifact not served at its hash-prefixed name: %v", err)
	}
	// Not visible before publish.
	pub, _ := loadPublished(dir)
	if len(pub.targets.Signed.Targets) != 0 {
		t.Error("Add changed the published targets")
	}
	p, err := Publish(dir, Options{})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if p.Targets != 2 || p.Snapshot != 2 || p.Timestamp != 2 {
		t.Errorf("published %+v, want targets, snapshot and timestamp at version 2", p)
	}
	pub, _ = loadPublished(dir)
	if len(pub.targets.Signed.Targets) != 2 {
		t.Errorf("published targets = %d, want 2", len(pub.targets.Signed.Targets))
	}
	// Publish with no change re-signs snapshot and timestamp only.
	p, err = Publish(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Targets != 2 || p.Snapshot != 3 || p.Timestamp != 3 {
		t.Errorf("re-publish %+v, want targets 2, snapshot 3, timestamp 3", p)
	}
	// Re-adding the same bytes is fine; other bytes for the same version are not.
	if _, err := Add(dir, filepath.Join(src, "hello.recipe.toml"), []string{filepath.Join(src, "hello.tar.gz")}, Options{}); err != nil {
		t.Errorf("re-Add of identical version: %v", err)
	}
	writeFile(t, filepath.Join(src, "hello.tar.gz"), []byte("other bytes"))
	writeFile(t, filepath.Join(src, "hello.recipe.toml"), recipeText("com.example.hello", "1.2.0", map[string][]byte{"hello.tar.gz": []byte("other bytes")}))
	if _, err := Add(dir, filepath.Join(src, "hello.recipe.toml"), []string{filepath.Join(src, "hello.tar.gz")}, Options{}); !errors.Is(err, ErrImmutable) {
		t.Errorf("Add over a published version: %v, want ErrImmutable", err)
	}
}

func TestAddRefusesRecipeArtifactDisagreement(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	art := []byte("artifact bytes")
	writeFile(t, filepath.Join(src, "hello.tar.gz"), art)
	writeFile(t, filepath.Join(src, "extra.bin"), []byte("x"))
	cases := map[string]struct {
		recipe    []byte
		artifacts []string
	}{
		"wrong sha256":   {recipeText("com.example.a", "1.0.0", map[string][]byte{"hello.tar.gz": []byte("not it")}), []string{"hello.tar.gz"}},
		"missing file":   {recipeText("com.example.a", "1.0.0", map[string][]byte{"hello.tar.gz": art}), nil},
		"unreferenced":   {recipeText("com.example.a", "1.0.0", map[string][]byte{"hello.tar.gz": art}), []string{"hello.tar.gz", "extra.bin"}},
		"bad version":    {recipeText("com.example.a", "one", nil), nil},
		"name with path": {recipeText("../evil", "1.0.0", nil), nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := filepath.Join(src, "r.recipe.toml")
			writeFile(t, r, tc.recipe)
			var arts []string
			for _, a := range tc.artifacts {
				arts = append(arts, filepath.Join(src, a))
			}
			if _, err := Add(dir, r, arts, Options{}); err == nil {
				t.Fatal("Add succeeded, want an error")
			}
			staged, _ := loadStaged(dir)
			if len(staged.Signed.Targets) != 0 {
				t.Errorf("a refused Add staged %d targets", len(staged.Signed.Targets))
			}
		})
	}
}
