package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
)

// wasmBuilds holds the WASM modules built for this test binary, so each
// guest program is compiled once per `go test`, not once per test.
var wasmBuilds struct {
	mu   sync.Mutex
	dir  string
	done map[string]string
}

// testWasm holds two engines for the whole test binary, each with one
// compilation cache, so that each module is compiled once: the compiler
// (the production default), and the interpreter, which loads a Go module
// in a second where the compiler under -race takes half a minute.
var testWasm struct {
	mu      sync.Mutex
	engines map[bool]*WasmEngine // by Interpreter
}

// sharedWasmEngine returns the test binary's engine, compiling or
// interpreting.
func sharedWasmEngine(t testing.TB, interpreter bool) *WasmEngine {
	t.Helper()
	testWasm.mu.Lock()
	defer testWasm.mu.Unlock()
	if e := testWasm.engines[interpreter]; e != nil {
		return e
	}
	e, err := NewWasmEngine(WasmConfig{Interpreter: interpreter})
	if err != nil {
		t.Fatal(err)
	}
	testWasm.engines[interpreter] = e
	return e
}

func TestMain(m *testing.M) {
	if runner.IsShim(os.Args) {
		runner.ShimMain()
	}
	dir, err := os.MkdirTemp("", "keystone-plugin-wasm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	wasmBuilds.dir, wasmBuilds.done = dir, map[string]string{}
	testWasm.engines = map[bool]*WasmEngine{}
	code := m.Run()
	for _, e := range testWasm.engines {
		_ = e.Close(context.Background())
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildWasm builds a Go program for GOOS=wasip1 GOARCH=wasm once per test
// binary and returns the module's path. pkg is either a guest program in
// testdata/wasm/<pkg>.go (built as its own module) or, starting with
// "./", a package of this module given from the module root.
func buildWasm(t testing.TB, pkg string) string {
	t.Helper()
	wasmBuilds.mu.Lock()
	defer wasmBuilds.mu.Unlock()
	if p, ok := wasmBuilds.done[pkg]; ok {
		return p
	}
	name := strings.NewReplacer("/", "_", ".", "_").Replace(pkg)
	out := filepath.Join(wasmBuilds.dir, name+".wasm")
	var cmd *exec.Cmd
	if strings.HasPrefix(pkg, "./") {
		root, err := filepath.Abs("../..")
		if err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
	} else {
		src, err := os.ReadFile(filepath.Join("testdata", "wasm", pkg+".go"))
		if err != nil {
			t.Fatal(err)
		}
		mod := filepath.Join(wasmBuilds.dir, "src-"+name)
		if err := os.MkdirAll(mod, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module guest\n\ngo 1.26\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, "main.go"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = mod
	}
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s for wasip1: %v\n%s", pkg, err, b)
	}
	wasmBuilds.done[pkg] = out
	return out
}

// newRunner makes a process runner with its own log folder and a unique
// cgroup root that is removed after the test.
func newRunner(t testing.TB) (*runner.Runner, *logs.Manager) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: exec plugins run as confined processes (cgroups, run_as) and these tests need root")
	}
	lm, err := logs.Open(logs.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	root := "/keystone-plugin-test-" + hex.EncodeToString(b)
	r, err := runner.New(runner.Config{Logs: lm, Cgroups: cgroup.Config{Root: root}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = lm.Close()
		m, err := cgroup.NewManager(cgroup.Config{Root: root})
		if err == nil {
			if err := m.Prune(); err != nil {
				t.Errorf("prune cgroup root: %v", err)
			}
		}
	})
	return r, lm
}

// openDir makes a folder every user can read and enter (for run_as), removed
// after the test.
func openDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "keystone-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// writeScript writes an executable /bin/sh plugin into dir.
func writeScript(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// pluginRecipe is a rendered plugin recipe.
func pluginRecipe(name string, pl recipes.Plugin) *recipes.Recipe {
	return &recipes.Recipe{
		Format:   1,
		Metadata: recipes.Metadata{Name: name, Version: "1.0.0", Kind: recipes.KindPlugin},
		Plugin:   &pl,
	}
}

func dur(d time.Duration) recipes.Duration { return recipes.Duration{Duration: d} }

// newPlugin makes a Plugin and closes it after the test.
func newPlugin(t testing.TB, cfg Config) *Plugin {
	t.Helper()
	cfg.AllowRoot = true // the tests run as root; refusing root has tests of its own
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// byName finds a mapped series by name and one label pair ("" = any).
func byName(t testing.TB, ms []Metric, name, label, value string) Metric {
	t.Helper()
	for _, m := range ms {
		if m.Name == name && (label == "" || m.Labels[label] == value) {
			return m
		}
	}
	t.Fatalf("no series %s{%s=%q} in %+v", name, label, value, ms)
	return Metric{}
}
