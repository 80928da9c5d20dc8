package recipes_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

// writeFiles writes name → content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImportsMergeInOrderThisFileWins(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base.toml": `
[config.defaults]
a = "base"
b = "base"
nested = { x = "base", y = "base" }
list = ["base"]
[resources]
pids_limit = 1
open_files = 1
[lifecycle.run]
stop_signal = "SIGINT"
args = ["--from-base"]
[[dependencies]]
name = "com.example.base"
`,
		"shared/overlay.toml": `
imports = ["deeper.toml"]
[config.defaults]
b = "overlay"
c = "overlay"
nested = { y = "overlay" }
[resources]
pids_limit = 2
`,
		"shared/deeper.toml": `
[config.defaults]
d = "deeper"
c = "deeper"
`,
		"main.recipe.toml": `
format = 1
imports = ["base.toml", "shared/overlay.toml"]
[metadata]
name = "com.example.main"
version = "1.0.0"
kind = "process"
[config.defaults]
c = "main"
list = ["main"]
[lifecycle.run]
command = "./main"
[[dependencies]]
name = "com.example.main-dep"
`,
	})
	r, err := recipes.ParseRecipeFile(filepath.Join(dir, "main.recipe.toml"))
	if err != nil {
		t.Fatal(err)
	}
	wantConfig := map[string]any{
		"a":      "base",                                      // only in the first import
		"b":      "overlay",                                   // the later import wins
		"c":      "main",                                      // the file itself wins over all
		"d":      "deeper",                                    // an import's import
		"nested": map[string]any{"x": "base", "y": "overlay"}, // tables merge key by key
		"list":   []any{"main"},                               // arrays are replaced whole
	}
	if !reflect.DeepEqual(r.Config.Defaults, wantConfig) {
		t.Errorf("config.defaults = %v\nwant %v", r.Config.Defaults, wantConfig)
	}
	if r.Resources.PidsLimit != 2 || r.Resources.OpenFiles != 1 {
		t.Errorf("resources = %+v, want pids 2 (overlay) and open_files 1 (base)", r.Resources)
	}
	run := r.Lifecycle.Run
	if run.Command != "./main" || run.StopSignal != "SIGINT" || !reflect.DeepEqual(run.Args, []string{"--from-base"}) {
		t.Errorf("run = %+v", run)
	}
	if len(r.Dependencies) != 1 || r.Dependencies[0].Name != "com.example.main-dep" {
		t.Errorf("dependencies = %+v, want only the file's own (arrays are replaced)", r.Dependencies)
	}
	wantFiles := []string{
		filepath.Join(dir, "base.toml"),
		filepath.Join(dir, "shared", "deeper.toml"),
		filepath.Join(dir, "shared", "overlay.toml"),
	}
	if !reflect.DeepEqual(r.ImportedFiles, wantFiles) {
		t.Errorf("ImportedFiles = %q\nwant %q", r.ImportedFiles, wantFiles)
	}

	// The same bytes parsed with the same name give the same recipe: the
	// merge is deterministic.
	data, err := os.ReadFile(filepath.Join(dir, "main.recipe.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := recipes.ParseRecipe(filepath.Join(dir, "main.recipe.toml"), data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("second parse differs:\n%+v\n%+v", again, r)
		}
	}
}

func TestImportsDiamondIsNotACycle(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"d.toml": "[resources]\npids_limit = 4\n",
		"b.toml": "imports = [\"d.toml\"]\n[resources]\nopen_files = 2\n",
		"c.toml": "imports = [\"d.toml\"]\n[resources]\ncpu_quota = 3\n",
		"a.recipe.toml": `format = 1
imports = ["b.toml", "c.toml"]
[metadata]
name = "com.example.a"
version = "1.0.0"
kind = "process"
[lifecycle.run]
command = "./a"
`,
	})
	r, err := recipes.ParseRecipeFile(filepath.Join(dir, "a.recipe.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Resources.PidsLimit != 4 || r.Resources.OpenFiles != 2 || r.Resources.CPUQuota != 3 {
		t.Errorf("resources = %+v", r.Resources)
	}
	want := []string{filepath.Join(dir, "d.toml"), filepath.Join(dir, "b.toml"), filepath.Join(dir, "c.toml")}
	if !reflect.DeepEqual(r.ImportedFiles, want) {
		t.Errorf("ImportedFiles = %q, want %q", r.ImportedFiles, want)
	}
}

func TestImportsErrors(t *testing.T) {
	dir := t.TempDir()
	head := "format = 1\n[metadata]\nname = \"com.example.a\"\nversion = \"1.0.0\"\nkind = \"process\"\n[lifecycle.run]\ncommand = \"./a\"\n"
	writeFiles(t, dir, map[string]string{
		"self.recipe.toml":   "imports = [\"self.recipe.toml\"]\n" + head,
		"syntax.recipe.toml": "imports = [\"broken.toml\"]\n" + head,
		"broken.toml":        "[resources\n",
		"dir.recipe.toml":    "imports = [\"sub\"]\n" + head,
		"sub/x":              "",
	})
	for _, tc := range []struct {
		file string
		want string
	}{
		{"self.recipe.toml", filepath.Join(dir, "self.recipe.toml") + ":1:12: imports[0]: import cycle: " +
			filepath.Join(dir, "self.recipe.toml") + " -> " + filepath.Join(dir, "self.recipe.toml")},
		{"syntax.recipe.toml", filepath.Join(dir, "broken.toml") + ":1:11: "},
		{"dir.recipe.toml", filepath.Join(dir, "dir.recipe.toml") + `:1:12: imports[0]: imported file "sub" is not a regular file`},
	} {
		_, err := recipes.ParseRecipeFile(filepath.Join(dir, tc.file))
		var list recipes.ErrorList
		if !errors.As(err, &list) || len(list) != 1 || !strings.HasPrefix(list[0].Error(), tc.want) {
			t.Errorf("%s: got %v, want one error starting %q", tc.file, err, tc.want)
		}
	}
}

// importHead is a valid recipe with no imports, to put an imports line on.
const importHead = "format = 1\n[metadata]\nname = \"com.example.a\"\nversion = \"1.0.0\"\nkind = \"process\"\n" +
	"[lifecycle.run]\ncommand = \"./a\"\n"

// mkfifo makes a FIFO and, at the end of the test, opens it for writing
// without blocking, which releases a reader stuck opening it.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}

// within runs f and fails the test if it has not returned after 10s: a
// guard against a hang, not a measure of speed.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s has not returned after 10s", what)
		return nil
	}
}

func TestImportOfAFIFOIsRefusedWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	mkfifo(t, filepath.Join(dir, "pipe.toml"))
	writeFiles(t, dir, map[string]string{"a.recipe.toml": "imports = [\"pipe.toml\"]\n" + importHead})
	err := within(t, "ParseRecipeFile", func() error {
		_, err := recipes.ParseRecipeFile(filepath.Join(dir, "a.recipe.toml"))
		return err
	})
	want := filepath.Join(dir, "a.recipe.toml") + `:1:12: imports[0]: imported file "pipe.toml" is not a regular file`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestParseFileOfAFIFOIsRefusedWithoutBlocking(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "a.recipe.toml")
	mkfifo(t, fifo)
	for what, parse := range map[string]func(string) error{
		"ParseRecipeFile":   func(p string) error { _, err := recipes.ParseRecipeFile(p); return err },
		"ParseManifestFile": func(p string) error { _, err := recipes.ParseManifestFile(p); return err },
	} {
		err := within(t, what, func() error { return parse(fifo) })
		if err == nil || !strings.HasSuffix(err.Error(), fifo+": not a regular file") {
			t.Errorf("%s: got %v, want not a regular file", what, err)
		}
	}
}

func TestImportThroughASymlinkLeavingTheFolderIsRefused(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.toml": "[resources]\npids_limit = 7\n"})
	dir := t.TempDir()
	for link, target := range map[string]string{
		"pw.toml": filepath.Join(outside, "secret.toml"),
		"shared":  outside,
		"up.toml": "../" + filepath.Base(outside) + "/secret.toml",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, imp := range []string{"pw.toml", "shared/secret.toml", "up.toml"} {
		writeFiles(t, dir, map[string]string{"a.recipe.toml": "imports = [\"" + imp + "\"]\n" + importHead})
		r, err := recipes.ParseRecipeFile(filepath.Join(dir, "a.recipe.toml"))
		if err == nil {
			t.Errorf("%s: read from outside the folder (pids_limit %d)", imp, r.Resources.PidsLimit)
			continue
		}
		want := fmt.Sprintf(`imports[0]: imported file %q leads out of the recipe's folder`, imp)
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), outside) {
			t.Errorf("%s: got %v, want %q and no word of where it leads", imp, err, want)
		}
	}
}

func TestImportThroughASymlinkInsideTheFolderIsRead(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"shared/limits.toml": "[resources]\npids_limit = 7\n",
		"sub/inner.toml":     "imports = [\"limits.toml\"]\n",
		"a.recipe.toml":      "imports = [\"limits.toml\", \"sub/inner.toml\"]\n" + importHead,
	})
	// A link beside the recipe, and one in a subfolder that climbs to a
	// sibling folder: both stay inside the recipe's folder.
	for link, target := range map[string]string{"limits.toml": "shared/limits.toml", "sub/limits.toml": "../shared/limits.toml"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := recipes.ParseRecipeFile(filepath.Join(dir, "a.recipe.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Resources.PidsLimit != 7 {
		t.Errorf("pids_limit = %d, want 7 from the linked import", r.Resources.PidsLimit)
	}
}
