package deploy_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/internal/proctest"
	"github.com/keystone-edge/keystone/ota"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// rig is a small agent inside the test process: a real store file, the real
// supervisor launching real processes through the real runner (the test
// binary is its shim), the real ota fetcher, and the engine under test.
type rig struct {
	t     testing.TB
	dir   string
	paths config.DataPaths
	token string // marks this rig's processes in /proc
	root  string // their cgroups' root
	key   ed25519.PrivateKey
	store *store.Store
	sup   *supervisor.Supervisor
	bus   *events.Bus
	eng   *deploy.Engine
	log   *watcher
}

// testStableFor is how long the tests' components must stay up before a
// deployment commits: long enough to see a process that exits at once.
const testStableFor = 300 * time.Millisecond

// rigOptions change what newRig builds.
type rigOptions struct {
	clock         supervisor.Clock
	keep          int
	allowUnsigned bool
	faultHook     func(string)
	stableFor     time.Duration                         // 0 = testStableFor
	repo          func(cacheDir string) *ota.Repository // nil = no component repository
	before        func(dataDir string)                  // runs before anything is built
	allowHTTP     bool                                  // plain http:// artifacts
	// refuseRoot is security.allow_root = false. The rigs otherwise allow
	// root: the tests run as root and their recipes name no run_as.
	refuseRoot   bool
	defaultRunAs string
}

func newRig(t testing.TB, opts ...func(*rigOptions)) *rig {
	t.Helper()
	var o rigOptions
	for _, f := range opts {
		f(&o)
	}
	dir := t.TempDir()
	r := &rig{t: t, dir: dir, paths: config.NewDataPaths(dir), token: randomHex(6), root: cgroupRoot(t)}
	if o.before != nil {
		o.before(dir)
	}
	r.build(o, r.root)
	return r
}

func (r *rig) build(o rigOptions, root string) {
	t := r.t
	ctx := context.Background()
	st, err := store.Open(ctx, r.paths.DB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lm, err := logs.Open(logs.Config{Dir: r.paths.Logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lm.Close() })
	run, err := runner.New(runner.Config{Logs: lm, Cgroups: cgroup.Config{Root: root}})
	if err != nil {
		t.Fatal(err)
	}
	r.bus = events.New(nil)
	r.log = watch(t, r.bus)
	sup, err := supervisor.New(supervisor.Config{
		Launcher: &supervisor.ProcessLauncher{Runner: run, Events: r.bus, DefaultRunAs: o.defaultRunAs, AllowRoot: !o.refuseRoot},
		Recorder: st, Reaper: supervisor.OrphanReaper(run, 5*time.Second),
		Shell:  supervisor.ShellUser{DefaultRunAs: o.defaultRunAs, AllowRoot: !o.refuseRoot},
		Events: r.bus, Clock: o.clock, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sup.Stop(sctx); err != nil {
			t.Errorf("supervisor stop: %v", err)
		}
	})
	cache, err := ota.OpenCache(ctx, ota.CacheConfig{Dir: r.paths.Artifacts, Index: st})
	if err != nil {
		t.Fatal(err)
	}
	var repo *ota.Repository
	if o.repo != nil {
		repo = o.repo(filepath.Join(r.dir, "tuf"))
	}
	dl, err := ota.NewDownloader(ota.DownloadConfig{AllowHTTP: repo != nil || o.allowHTTP})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ota.NewFetcher(ota.FetcherConfig{Cache: cache, Downloader: dl, Repository: repo, ComponentsDir: r.paths.Components})
	if err != nil {
		t.Fatal(err)
	}
	if r.key == nil {
		_, r.key, err = sign.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	kr, err := sign.NewKeyring(r.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	stable := o.stableFor
	if stable == 0 {
		stable = testStableFor
	}
	cfg := deploy.Config{
		Store: st, Supervisor: sup, Fetcher: f, Keyring: kr, AllowUnsigned: o.allowUnsigned,
		AllowRoot: !o.refuseRoot, DefaultRunAs: o.defaultRunAs,
		DeviceID: "dev-1", WorkDir: r.paths.Work, ComponentsDir: r.paths.Components, StagingDir: r.paths.Dir, KeepVersions: o.keep, Events: r.bus, Clock: o.clock, StableFor: stable,
		Logger: testLogger(), FaultHook: o.faultHook,
	}
	if repo != nil {
		cfg.Repository = repo
	}
	eng, err := deploy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine Run: %v", err)
		}
	})
	r.store, r.sup, r.eng = st, sup, eng
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cgroupRoot returns a cgroup root unique to the test, pruned at its end.
func cgroupRoot(t testing.TB) string {
	root := "/keystone-deploy-test-" + randomHex(6)
	t.Cleanup(func() {
		m, err := cgroup.NewManager(cgroup.Config{Root: root})
		if err != nil {
			t.Errorf("cgroup manager for cleanup: %v", err)
			return
		}
		if err := m.Prune(); err != nil {
			t.Errorf("prune cgroups under %s: %v", root, err)
		}
	})
	return root
}

// spec describes a test component's recipe.
type spec struct {
	name, version string
	script        string   // default: exec sleep 600
	command       string   // instead of script: exec'd with args
	args          []string // the command's arguments
	env           map[string]string
	deps          []string // "name" is hard, "~name" soft
	defaults      string   // body of [config.defaults]
	health        string   // health check
	install       string   // install script
	restart       string   // restart_policy; default on-failure
	runAs         string   // security.run_as; default none
	artifact      *artifact
}

type artifact struct{ uri, sha256 string }

// recipe writes s as recipe TOML. Every process carries KS_MARK =
// "<token>:<name>" in its environment, so /proc tells whose it is.
func (r *rig) recipe(s spec) string {
	script := s.script
	if script == "" {
		script = "exec sleep 600"
	}
	restart := s.restart
	if restart == "" {
		restart = "on-failure"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "format = 1\n[metadata]\nname = %q\nversion = %q\nkind = \"process\"\n", s.name, s.version)
	if s.defaults != "" {
		fmt.Fprintf(&b, "[config.defaults]\n%s\n", s.defaults)
	}
	if s.artifact != nil {
		fmt.Fprintf(&b, "[[artifacts]]\nuri = %q\nsha256 = %q\nexecutable = true\n", s.artifact.uri, s.artifact.sha256)
	}
	if s.install != "" {
		fmt.Fprintf(&b, "[lifecycle.install]\nscript = %q\ntimeout = \"20s\"\n", s.install)
	}
	if s.command != "" {
		fmt.Fprintf(&b, "[lifecycle.run]\ncommand = %q\n", s.command)
	} else {
		fmt.Fprintf(&b, "[lifecycle.run]\nscript = %q\n", script)
	}
	if len(s.args) > 0 {
		fmt.Fprintf(&b, "args = [")
		for i, a := range s.args {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", a)
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "env = { KS_MARK = %q", r.token+":"+s.name)
	for k, v := range s.env {
		fmt.Fprintf(&b, ", %s = %q", k, v)
	}
	b.WriteString(" }\n")
	fmt.Fprintf(&b, "restart_policy = %q\nrestart_backoff = { initial = \"0s\", max = \"100ms\" }\n", restart)
	b.WriteString("max_restarts = { count = 2, window = \"1m\" }\nstop_timeout = \"5s\"\n")
	if s.health != "" {
		fmt.Fprintf(&b, "[lifecycle.run.health]\ncheck = %q\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfailure_threshold = 1000\n", s.health)
	}
	for _, d := range s.deps {
		typ := "hard"
		if name, ok := strings.CutPrefix(d, "~"); ok {
			d, typ = name, "soft"
		}
		fmt.Fprintf(&b, "[[dependencies]]\nname = %q\ntype = %q\n", d, typ)
	}
	if s.runAs != "" {
		fmt.Fprintf(&b, "[security]\nrun_as = %q\n", s.runAs)
	}
	return b.String()
}

// manifest describes a deployment: its [deployment] table and components.
type manifest struct {
	id            string
	policy        string // default rollback
	healthTimeout string // default 20s
	comps         []spec
	config        map[string]string // component -> body of its [components.config]
	roots         []string          // names listed; default every comp
}

// request builds the deployment request: the manifest, every recipe by
// "<name>.recipe.toml", each signed with the rig's key.
func (r *rig) request(m manifest) deploy.Request {
	policy, ht := m.policy, m.healthTimeout
	if policy == "" {
		policy = "rollback"
	}
	if ht == "" {
		ht = "20s"
	}
	var b strings.Builder
	b.WriteString("format = 1\n[deployment]\n")
	if m.id != "" {
		fmt.Fprintf(&b, "id = %q\n", m.id)
	}
	fmt.Fprintf(&b, "failure_policy = %q\nhealth_timeout = %q\n", policy, ht)
	files := map[string][]byte{}
	roots := map[string]bool{}
	for _, n := range m.roots {
		roots[n] = true
	}
	for _, s := range m.comps {
		file := s.name + ".recipe.toml"
		text := []byte(r.recipe(s))
		files[file] = text
		files[file+".sig"] = r.sign(text)
		if len(m.roots) > 0 && !roots[s.name] {
			continue
		}
		fmt.Fprintf(&b, "[[components]]\nname = %q\nversion = %q\nrecipe = %q\n", s.name, s.version, file)
		if c := m.config[s.name]; c != "" {
			fmt.Fprintf(&b, "[components.config]\n%s\n", c)
		}
	}
	return deploy.Request{Manifest: []byte(b.String()), ManifestName: "deployment.toml", Files: files}
}

// deploy submits m and waits for it to finish.
func (r *rig) deploy(m manifest) deploy.Deployment {
	r.t.Helper()
	acc, err := r.eng.Submit(context.Background(), r.request(m))
	if err != nil {
		r.t.Fatalf("submit: %v", err)
	}
	return r.wait(acc.ID)
}

func (r *rig) wait(id string) deploy.Deployment {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d, err := r.eng.Wait(ctx, id)
	if err != nil {
		r.t.Fatalf("wait for %s: %v\nsteps: %s", id, err, stepsOf(d))
	}
	return d
}

// mustSucceed fails the test unless d SUCCEEDED.
func mustSucceed(t testing.TB, d deploy.Deployment) {
	t.Helper()
	if d.Status != "SUCCEEDED" {
		t.Fatalf("deployment %s is %s (%s: %s); steps: %s", d.ID, d.Status, d.ErrorCode, d.Error, stepsOf(d))
	}
}

func stepsOf(d deploy.Deployment) string {
	var parts []string
	for _, s := range d.Steps {
		parts = append(parts, string(s.Name)+":"+string(s.Status))
	}
	return strings.Join(parts, " ")
}

// statuses returns the supervisor's statuses by name.
func (r *rig) statuses() map[string]supervisor.Status {
	out := map[string]supervisor.Status{}
	for _, st := range r.sup.Snapshot() {
		out[st.Name] = st
	}
	return out
}

// running checks that exactly want (name -> version) runs, each RUNNING
// with one live process of its own, and returns the pids.
func (r *rig) running(want map[string]string) map[string]int {
	r.t.Helper()
	sts := r.statuses()
	pids := map[string]int{}
	for name, v := range want {
		st, ok := sts[name]
		switch {
		case !ok:
			r.t.Fatalf("%s is not supervised; have %v", name, sts)
		case st.Version != v || st.State != supervisor.StateRunning:
			r.t.Fatalf("%s is %s@%s, want RUNNING@%s (last error %q)", name, st.State, st.Version, v, st.LastError)
		}
		pids[name] = st.Pid
	}
	if len(sts) != len(want) {
		r.t.Fatalf("supervised %d components, want %d: %v", len(sts), len(want), sts)
	}
	procs, err := proctest.Marked(r.token, r.root)
	if err != nil {
		r.t.Fatal(err)
	}
	for name, pid := range pids {
		if got := procs[name]; len(got) != 1 || got[0] != pid {
			r.t.Fatalf("%s: processes in /proc %v, want exactly its pid %d", name, got, pid)
		}
	}
	for name, got := range procs {
		if _, ok := want[name]; !ok {
			r.t.Fatalf("%s is not deployed but has processes %v", name, got)
		}
	}
	return pids
}

// watcher keeps every event the bus delivers, for order checks.
type watcher struct {
	t  testing.TB
	ch <-chan events.Event
}

func watch(t testing.TB, bus *events.Bus) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &watcher{t: t, ch: bus.Subscribe(ctx, 1<<16)}
}

// drain returns every event delivered so far.
func (w *watcher) drain() []events.Event {
	var out []events.Event
	for {
		select {
		case e := <-w.ch:
			if e.Dropped > 0 {
				w.t.Fatalf("watcher lost %d events", e.Dropped)
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

// waitFor returns once an event matching ok arrives.
func (w *watcher) waitFor(what string, ok func(events.Event) bool) events.Event {
	w.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case e := <-w.ch:
			if ok(e) {
				return e
			}
		case <-deadline:
			w.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// indexOf returns the position of the first transition of component to
// state in log, or -1.
func indexOf(log []events.Event, component, to string) int {
	for i, e := range log {
		if e.Kind == events.KindTransition && e.Component == component && e.To == to {
			return i
		}
	}
	return -1
}

// sign returns the detached signature file content of data by the rig's key.
func (r *rig) sign(data []byte) []byte { return sign.EncodeSignature(sign.Sign(r.key, data)) }
