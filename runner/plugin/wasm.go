package plugin

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Memory bounds of wasm plugins.
const (
	// DefaultWasmMemoryLimit is a module's memory cap when its recipe sets
	// no memory_limit.
	DefaultWasmMemoryLimit = 128 << 20 // 128 MiB
	// wasmPage is the WebAssembly page size.
	wasmPage = 64 << 10
	// wasiModule is the only host module a plugin may import.
	wasiModule = wasi_snapshot_preview1.ModuleName
)

// WasmEngine compiles and runs wasm plugins with wazero (pure Go). Compiled
// code is shared through one compilation cache, so a plugin restarted with
// the same module is not compiled again. It is safe for concurrent use;
// Close it after every Plugin that uses it is closed.
type WasmEngine struct {
	cache       wazero.CompilationCache
	interpreter bool
}

// WasmConfig says how modules are compiled.
type WasmConfig struct {
	// CacheDir keeps compiled code on disk across agent restarts; "" =
	// in memory only.
	CacheDir string
	// Interpreter runs modules with wazero's interpreter instead of
	// compiling them to machine code: a module loads many times faster
	// and runs several times slower. false = compile where wazero can
	// (amd64, arm64) and interpret elsewhere.
	Interpreter bool
}

// NewWasmEngine makes an engine.
func NewWasmEngine(cfg WasmConfig) (*WasmEngine, error) {
	if cfg.CacheDir == "" {
		return &WasmEngine{cache: wazero.NewCompilationCache(), interpreter: cfg.Interpreter}, nil
	}
	c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("wasm compilation cache %s: %w", cfg.CacheDir, err)
	}
	return &WasmEngine{cache: c, interpreter: cfg.Interpreter}, nil
}

// Close releases the compilation cache.
func (e *WasmEngine) Close(ctx context.Context) error { return e.cache.Close(ctx) }

// wasmProgram is one plugin's module, compiled once in its own runtime
// (the memory cap is a runtime setting) and instantiated afresh for every
// run, so no run sees another's memory.
type wasmProgram struct {
	rt       wazero.Runtime
	mod      wazero.CompiledModule
	args     []string
	fs       *readOnlyFS // nil: no file system at all
	limitStr string      // the memory cap, for messages
}

// load reads and compiles the module at path, with a memory cap of limit
// bytes (0 = DefaultWasmMemoryLimit). Problems with the module wrap
// ErrStart.
func (e *WasmEngine) load(ctx context.Context, path string, args, fsRead []string, limit int64) (_ *wasmProgram, retErr error) {
	if limit <= 0 {
		limit = DefaultWasmMemoryLimit
	}
	pages := uint32(min(limit/wasmPage, 65536))
	if pages == 0 {
		return nil, fmt.Errorf("%w: plugin.memory_limit %d bytes is less than one 64 KiB page", ErrStart, limit)
	}
	fsys, err := newReadOnlyFS(fsRead)
	if err != nil {
		return nil, fmt.Errorf("%w: plugin.fs_read: %v", ErrStart, err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: read module: %v", ErrStart, err)
	}
	rc := wazero.NewRuntimeConfig()
	if e.interpreter {
		rc = wazero.NewRuntimeConfigInterpreter()
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc.
		WithCloseOnContextDone(true). // a timeout stops even an endless loop
		WithMemoryLimitPages(pages).
		WithCompilationCache(e.cache))
	defer func() {
		if retErr != nil {
			_ = rt.Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, fmt.Errorf("%w: WASI: %v", ErrStart, err)
	}
	mod, err := rt.CompileModule(ctx, bin)
	if err != nil {
		if strings.Contains(err.Error(), "memory") && strings.Contains(err.Error(), "limit") {
			return nil, fmt.Errorf("%w: module %s needs more memory than plugin.memory_limit (%d pages of 64 KiB): %v", ErrStart, filepath.Base(path), pages, err)
		}
		return nil, fmt.Errorf("%w: compile module %s: %v", ErrStart, filepath.Base(path), err)
	}
	for _, f := range mod.ImportedFunctions() {
		if m, n, _ := f.Import(); m != wasiModule {
			return nil, fmt.Errorf("%w: module %s imports %s.%s: a plugin gets only %s", ErrStart, filepath.Base(path), m, n, wasiModule)
		}
	}
	for _, m := range mod.ImportedMemories() {
		mn, n, _ := m.Import()
		return nil, fmt.Errorf("%w: module %s imports memory %s.%s: a plugin gets only %s", ErrStart, filepath.Base(path), mn, n, wasiModule)
	}
	return &wasmProgram{
		rt: rt, mod: mod, fs: fsys,
		args:     append([]string{filepath.Base(path)}, args...),
		limitStr: fmt.Sprintf("%d KiB", int64(pages)*wasmPage>>10),
	}, nil
}

func (w *wasmProgram) run(ctx context.Context, stdin []byte, stdout *limitedBuffer, stderr *tailBuffer) error {
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: a fresh instance every run
		WithArgs(w.args...).
		WithStdin(bytes.NewReader(stdin)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader)
	if w.fs != nil {
		cfg = cfg.WithFSConfig(wazero.NewFSConfig().WithFSMount(w.fs, "/"))
	}
	m, err := w.rt.InstantiateModule(ctx, w.mod, cfg)
	if m != nil {
		_ = m.Close(context.WithoutCancel(ctx))
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var exit *sys.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 0:
		return nil
	case errors.As(err, &exit):
		return fmt.Errorf("%w: exited with code %d%s", ErrExit, exit.ExitCode(), w.memoryHint(stderr))
	default:
		// A trap: unreachable, out-of-bounds access, a failed memory.grow
		// in a module that does not check it.
		return fmt.Errorf("%w: %v%s", ErrExit, err, w.memoryHint(stderr))
	}
}

// memoryHint names memory_limit when the module said it ran out of memory.
func (w *wasmProgram) memoryHint(stderr *tailBuffer) string {
	if stderr.contains("out of memory") {
		return fmt.Sprintf(" (out of memory: plugin.memory_limit is %s)", w.limitStr)
	}
	return ""
}

// close releases the runtime and its compiled module.
func (w *wasmProgram) close(ctx context.Context) error { return w.rt.Close(ctx) }
