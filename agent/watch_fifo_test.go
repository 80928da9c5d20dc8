package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fifoWatchFolder makes a watch folder holding a FIFO named like a recipe,
// a FIFO named like an import, and a recipe that imports the latter: none
// has a writer, so opening either without O_NONBLOCK blocks for ever.
func fifoWatchFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"stuck.recipe.toml", "pipe.toml"} {
		if err := unix.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := "imports = [\"pipe.toml\"]\n" + recipeText("com.example.fifo", "1.0.0", "exec sleep 1000")
	if err := os.WriteFile(filepath.Join(dir, "fifo.recipe.toml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// FIFOs in the watch folder, named there or imported by a recipe, are
// never opened for reading: the folder is refused with a warning naming
// the import, and the agent stops cleanly.
func TestWatchFolderNeverBlocksOnAFIFO(t *testing.T) {
	dir := fifoWatchFolder(t)
	a := startAgent(t, agentConfig(t, "[dev]\nwatch_dir = "+tomlString(dir)), Options{})
	a.seen.wait(t, "watch folder not applied; what runs is left as it is", 1)
	if !a.logs.contains("watch folder not applied", "pipe.toml", "does not exist") {
		t.Errorf("the refusal does not name the FIFO import:\n%s", a.logs)
	}
	if err := a.stop(); err != nil {
		t.Fatalf("shutdown: %v\nlogs:\n%s", err, a.logs)
	}
}

// readRegular refuses what is not a regular file at once, FIFOs and
// symbolic links included, and bounds what it reads.
func TestReadRegularRefusesNonRegularFiles(t *testing.T) {
	dir := fifoWatchFolder(t)
	if _, err := readRegular(filepath.Join(dir, "pipe.toml")); !errors.Is(err, errNotRegular) {
		t.Errorf("FIFO: %v, want errNotRegular", err)
	}
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink("fifo.recipe.toml", link); err != nil {
		t.Fatal(err)
	}
	if _, err := readRegular(link); !errors.Is(err, errNotRegular) {
		t.Errorf("symbolic link: %v, want errNotRegular", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, maxWatchFile+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRegular(big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversize file: %v", err)
	}
	if b, err := readRegular(filepath.Join(dir, "fifo.recipe.toml")); err != nil || !strings.Contains(string(b), "pipe.toml") {
		t.Errorf("regular file: %q %v", b, err)
	}
}
