package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

// newWasmEngine is the interpreting engine: the failure modes under test
// are wazero's runtime's, the same with either engine.
func newWasmEngine(t testing.TB) *WasmEngine { return sharedWasmEngine(t, true) }

// wasmPlugin makes a wasm plugin of the module at path.
func wasmPlugin(t testing.TB, e *WasmEngine, path string, pl recipes.Plugin) (*Plugin, error) {
	t.Helper()
	pl.Runtime, pl.Command = RuntimeWasm, path
	if pl.Timeout.Duration == 0 {
		pl.Timeout = dur(20 * time.Second)
	}
	p, err := New(context.Background(), Config{
		Recipe: pluginRecipe("com.example.wasm", pl), VersionDir: filepath.Dir(path), Wasm: e,
	})
	if err == nil {
		t.Cleanup(func() { _ = p.Close(context.Background()) })
	}
	return p, err
}

func TestWasmExampleRunsWithItsRecipe(t *testing.T) {
	module := buildWasm(t, "./recipes/examples/sysload-wasm")
	r, err := recipes.ParseRecipeFile("../../recipes/examples/sysload-wasm.recipe.toml")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := r.Render(map[string]any{"bin_dir": filepath.Dir(module), "site": "kyiv"}, recipes.Vars{DeviceID: "pos-12"})
	if err != nil {
		t.Fatal(err)
	}
	// The build names the module after its package; the recipe wants sysload.wasm.
	if err := os.Rename(module, filepath.Join(filepath.Dir(module), "sysload.wasm")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Rename(filepath.Join(filepath.Dir(module), "sysload.wasm"), module) })
	e := sharedWasmEngine(t, false) // compiled, as in production
	p := newPlugin(t, Config{Recipe: rendered, VersionDir: openDir(t), DeviceID: "pos-12", Wasm: e})

	res, err := p.Run(context.Background(), json.RawMessage(`{"runs":4}`))
	if err != nil {
		t.Fatal(err)
	}
	load := byName(t, res.Metrics, "sysload_wasm_load_average", "window", "1m")
	if load.Type != Gauge || load.Labels["site"] != "kyiv" || load.Labels["device"] != "pos-12" || load.Value < 0 {
		t.Errorf("load = %+v", load)
	}
	if up := byName(t, res.Metrics, "sysload_wasm_uptime_seconds", "", ""); up.Value <= 0 {
		t.Errorf("uptime = %+v: /proc/uptime must be readable through fs_read", up)
	}
	if mem := byName(t, res.Metrics, "sysload_wasm_memory_total_bytes", "", ""); mem.Value <= 0 {
		t.Errorf("memory = %+v", mem)
	}
	runs := byName(t, res.Metrics, "sysload_wasm_plugin_runs_total", "", "")
	if runs.Type != Counter || runs.Value != 5 || string(res.State) != `{"runs":5}` {
		t.Errorf("runs = %+v, state %s; want 5 after a state of 4", runs, res.State)
	}
	// A second run instantiates the compiled module afresh and sees the
	// state handed back, nothing of the first run's memory.
	res2, err := p.Run(context.Background(), res.State)
	if err != nil || string(res2.State) != `{"runs":6}` {
		t.Fatalf("second run: %v, state %s", err, res2.State)
	}
}

func TestWasmEndlessLoopIsStoppedAtTheTimeout(t *testing.T) {
	p, err := wasmPlugin(t, newWasmEngine(t), buildWasm(t, "loop"), recipes.Plugin{Timeout: dur(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(context.Background(), nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 1s") {
			t.Fatalf("err = %v, want a timeout", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("an endless loop was not stopped")
	}
}

func TestWasmMemoryLimitIsEnforced(t *testing.T) {
	module := buildWasm(t, "grow")
	e := newWasmEngine(t)
	small, err := wasmPlugin(t, e, module, recipes.Plugin{Args: []string{"64"}, MemoryLimit: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_, err = small.Run(context.Background(), nil)
	if !errors.Is(err, ErrExit) || !strings.Contains(err.Error(), "out of memory") || !strings.Contains(err.Error(), "memory_limit is 16384 KiB") {
		t.Fatalf("growing 64 MiB under a 16 MiB limit: err = %v", err)
	}
	// The same module with room for it succeeds: the limit made the difference.
	big, err := wasmPlugin(t, e, module, recipes.Plugin{Args: []string{"64"}, MemoryLimit: 128 << 20})
	if err != nil {
		t.Fatal(err)
	}
	res, err := big.Run(context.Background(), nil)
	if err != nil || byName(t, res.Metrics, "allocated_bytes", "", "").Value != 64<<20 {
		t.Fatalf("64 MiB under a 128 MiB limit: %v", err)
	}
}

func TestWasmModuleLargerThanItsLimitDoesNotLoad(t *testing.T) {
	// A Go module starts with about 2.6 MiB of memory: 1 MiB cannot hold it.
	_, err := wasmPlugin(t, newWasmEngine(t), buildWasm(t, "grow"), recipes.Plugin{MemoryLimit: 1 << 20})
	if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), "more memory than plugin.memory_limit") {
		t.Fatalf("err = %v", err)
	}
}

func TestWasmFileAccessIsLimitedToFSRead(t *testing.T) {
	module := buildWasm(t, "readfile")
	e := newWasmEngine(t)
	inside := openDir(t)
	secret := filepath.Join(openDir(t), "secret.txt")
	if err := os.WriteFile(secret, []byte("top secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inside, "data.txt"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(inside, "escape")); err != nil {
		t.Fatal(err)
	}
	// A relative fs_read entry is in the version folder (the module's).
	if err := os.WriteFile(filepath.Join(filepath.Dir(module), "shipped.txt"), []byte("with the module"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join(filepath.Dir(module), "shipped.txt")) })
	fsRead := []string{"/proc/uptime", inside, "shipped.txt"}
	run := func(path string) (*Result, error) {
		t.Helper()
		p, err := wasmPlugin(t, e, module, recipes.Plugin{Args: []string{path}, FSRead: fsRead})
		if err != nil {
			t.Fatal(err)
		}
		return p.Run(context.Background(), nil)
	}
	for _, ok := range []string{"/proc/uptime", filepath.Join(inside, "data.txt"), filepath.Join(filepath.Dir(module), "shipped.txt")} {
		if res, err := run(ok); err != nil || byName(t, res.Metrics, "file_bytes", "", "").Value <= 0 {
			t.Errorf("reading %s (in fs_read): %v", ok, err)
		}
	}
	for _, refused := range []string{secret, "/etc/hostname", "/proc/self/environ", filepath.Join(inside, "escape"), inside + "/../" + filepath.Base(filepath.Dir(secret)) + "/secret.txt"} {
		res, err := run(refused)
		if err == nil {
			t.Errorf("reading %s (outside fs_read) succeeded: %+v", refused, res)
			continue
		}
		if !errors.Is(err, ErrExit) || !strings.Contains(err.Error(), "not permitted") && !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("reading %s: err = %v, want it refused", refused, err)
		}
	}
}

func TestWasmModuleImportingHostFunctionsIsRefused(t *testing.T) {
	_, err := wasmPlugin(t, newWasmEngine(t), buildWasm(t, "hostimport"), recipes.Plugin{})
	if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), "imports env.launch_missiles") {
		t.Fatalf("err = %v", err)
	}
}
