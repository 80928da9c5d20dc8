package deploy_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/ota"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/cgroup"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// The test binary doubles as a mini agent: store, runner, supervisor,
// fetcher and engine over a data folder, exactly as the agent wires them.
// It optionally submits a deployment, SIGKILLs itself from FaultHook at a
// chosen checkpoint, and otherwise settles (every deployment finished and
// the current set ready), prints what it runs as one "settled {json}" line
// and stops cleanly on SIGTERM.
const (
	miniAgentEnv = "KEYSTONE_DEPLOY_MINIAGENT" // the data folder; set: run as the mini agent
	miniRootEnv  = "KEYSTONE_DEPLOY_MINIAGENT_CGROUP_ROOT"
	miniPubEnv   = "KEYSTONE_DEPLOY_MINIAGENT_PUB"    // hex ed25519 public key
	miniSubmit   = "KEYSTONE_DEPLOY_MINIAGENT_SUBMIT" // a JSON deploy.Request file
	miniCrash    = "KEYSTONE_DEPLOY_MINIAGENT_CRASH"  // checkpoint to SIGKILL at
)

// runState is one supervised component as a mini agent reports it.
type runState struct {
	Name, Version, State string
	Pid                  int
}

// settled is what a mini agent reports once it has nothing left to do.
type settled struct {
	Current     deploy.CurrentSet   `json:"current"`
	Snapshot    []runState          `json:"snapshot"`
	Deployments []deploy.Deployment `json:"deployments"`
}

func miniAgent() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "mini agent: %s: %v\n", what, err)
		return 1
	}
	paths := config.NewDataPaths(os.Getenv(miniAgentEnv))
	root := os.Getenv(miniRootEnv)
	st, err := store.Open(ctx, paths.DB)
	if err != nil {
		return fail("open store", err)
	}
	defer st.Close()
	lm, err := logs.Open(logs.Config{Dir: paths.Logs})
	if err != nil {
		return fail("open logs", err)
	}
	defer lm.Close()
	run, err := runner.New(runner.Config{Logs: lm, Cgroups: cgroup.Config{Root: root}})
	if err != nil {
		return fail("runner", err)
	}
	// A process started in the instant before the crash may not be
	// recorded yet: stop whatever is left in the groups of every component
	// ever deployed here before anything starts.
	if err := sweepGroups(ctx, st, run, root); err != nil {
		return fail("sweep", err)
	}
	// Root allowed throughout: the mini agent runs as root and its recipes
	// name no run_as.
	sup, err := supervisor.New(supervisor.Config{Launcher: &supervisor.ProcessLauncher{Runner: run, AllowRoot: true},
		Recorder: st, Reaper: supervisor.OrphanReaper(run, 5*time.Second), Shell: supervisor.ShellUser{AllowRoot: true}})
	if err != nil {
		return fail("supervisor", err)
	}
	if err := sup.Start(ctx); err != nil {
		return fail("supervisor start", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = sup.Stop(sctx)
	}()
	cache, err := ota.OpenCache(ctx, ota.CacheConfig{Dir: paths.Artifacts, Index: st})
	if err != nil {
		return fail("cache", err)
	}
	dl, err := ota.NewDownloader(ota.DownloadConfig{})
	if err != nil {
		return fail("downloader", err)
	}
	f, err := ota.NewFetcher(ota.FetcherConfig{Cache: cache, Downloader: dl, ComponentsDir: paths.Components})
	if err != nil {
		return fail("fetcher", err)
	}
	pub, err := hex.DecodeString(os.Getenv(miniPubEnv))
	if err != nil {
		return fail("public key", err)
	}
	kr, err := sign.NewKeyring(ed25519.PublicKey(pub))
	if err != nil {
		return fail("keyring", err)
	}
	crashAt := os.Getenv(miniCrash)
	eng, err := deploy.New(deploy.Config{Store: st, Supervisor: sup, Fetcher: f, Keyring: kr, DeviceID: "dev-1", AllowRoot: true,
		WorkDir: paths.Work, ComponentsDir: paths.Components, StagingDir: paths.Dir, StableFor: testStableFor, FaultHook: func(cp string) {
			if cp == crashAt {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}})
	if err != nil {
		return fail("engine", err)
	}
	rctx, cancelRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- eng.Run(rctx) }()
	defer func() {
		cancelRun()
		<-runDone
	}()
	if file := os.Getenv(miniSubmit); file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return fail("read request", err)
		}
		var req deploy.Request
		if err := json.Unmarshal(b, &req); err != nil {
			return fail("decode request", err)
		}
		acc, err := eng.Submit(ctx, req)
		if err != nil {
			return fail("submit", err)
		}
		fmt.Println("submitted " + acc.ID)
	}
	// Settle: every deployment finished, then the current set ready.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	select {
	case <-eng.Started():
	case err := <-runDone:
		runDone <- err // for the deferred wait
		return fail("run", err)
	}
	for {
		un, err := st.UnfinishedDeployments(wctx)
		if err != nil {
			return fail("unfinished", err)
		}
		if len(un) == 0 {
			break
		}
		if _, err := eng.Wait(wctx, un[0].ID); err != nil {
			return fail("wait", err)
		}
	}
	var names []string
	for _, c := range eng.Current().Components {
		names = append(names, c.Name)
	}
	if err := sup.WaitReady(wctx, names); err != nil {
		return fail("wait ready", err)
	}
	list, err := eng.List(wctx, 0)
	if err != nil {
		return fail("list", err)
	}
	rep := settled{Current: eng.Current(), Deployments: list}
	for _, st := range sup.Snapshot() {
		rep.Snapshot = append(rep.Snapshot, runState{Name: st.Name, Version: st.Version, State: st.State.String(), Pid: st.Pid})
	}
	out, err := json.Marshal(rep)
	if err != nil {
		return fail("encode", err)
	}
	fmt.Println("settled " + string(out))
	<-ctx.Done()
	return 0
}

// sweepGroups stops what is left in the cgroup of every component any
// recorded deployment named.
func sweepGroups(ctx context.Context, st *store.Store, run *runner.Runner, root string) error {
	list, err := st.ListDeployments(ctx, 0)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range list {
		for name := range d.Recipes {
			if seen[name] {
				continue
			}
			seen[name] = true
			if _, err := run.StopOrphan(ctx, runner.Record{Component: name, CgroupPath: root + "/" + name},
				runner.StopOptions{Timeout: time.Second}); err != nil {
				return err
			}
		}
	}
	return nil
}

// agentProc is a mini agent started by a test.
type agentProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func startMiniAgent(t *testing.T, r *rig, root string, req *deploy.Request, crashAt string) *agentProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), miniAgentEnv+"="+r.dir, miniRootEnv+"="+root,
		miniPubEnv+"="+hex.EncodeToString(r.key.Public().(ed25519.PublicKey)), miniCrash+"="+crashAt)
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "request.json")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, miniSubmit+"="+file)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{t: t, cmd: cmd, lines: make(chan string, 16), done: make(chan error, 1)}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
		a.done <- cmd.Wait()
	}()
	return a
}

// settle waits for the agent's settled report.
func (a *agentProc) settle() settled {
	a.t.Helper()
	deadline := time.After(3 * time.Minute)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				a.t.Fatalf("mini agent ended before settling: %v", <-a.done)
			}
			if js, ok := strings.CutPrefix(l, "settled "); ok {
				var s settled
				if err := json.Unmarshal([]byte(js), &s); err != nil {
					a.t.Fatal(err)
				}
				return s
			}
		case <-deadline:
			a.t.Fatal("mini agent did not settle within 3 minutes")
		}
	}
}

// stop sends SIGTERM and requires a clean exit.
func (a *agentProc) stop() {
	a.t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	for range a.lines {
	}
	if err := <-a.done; err != nil {
		a.t.Fatalf("mini agent exit: %v", err)
	}
}

// killed waits for the agent to die of the SIGKILL its FaultHook sent.
func (a *agentProc) killed(at string) {
	a.t.Helper()
	for range a.lines {
	}
	err := <-a.done
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		a.t.Fatalf("mini agent was to crash at %s; it ended with %v", at, err)
	}
}

// crashRig is a rig for mini agents only: it names the data folder, the
// key and the process marker, and builds nothing in the test process.
func crashRig(t *testing.T) *rig {
	_, key, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &rig{t: t, dir: dir, paths: config.NewDataPaths(dir), token: randomHex(6), root: cgroupRoot(t), key: key}
}

// crashCase deploys old, then new with a SIGKILL at checkpoint, restarts
// and checks the device ends in exactly the set want says.
func crashCase(t *testing.T, old, next manifest, checkpoint string, wantNew bool) {
	r := crashRig(t)
	root := r.root
	a := startMiniAgent(t, r, root, ptr(r.request(old)), "")
	if s := a.settle(); s.Current.DeploymentID != old.id {
		t.Fatalf("first deployment: current %+v", s.Current)
	}
	a.stop()

	a = startMiniAgent(t, r, root, ptr(r.request(next)), checkpoint)
	a.killed(checkpoint)

	a = startMiniAgent(t, r, root, nil, "")
	s := a.settle()
	want, wantID := versions(old.comps), old.id
	if wantNew {
		want, wantID = versions(next.comps), next.id
	}
	var d deploy.Deployment
	for _, x := range s.Deployments {
		if x.ID == next.id {
			d = x
		}
	}
	switch {
	case wantNew && d.Status != "SUCCEEDED":
		t.Errorf("%s after the crash: %s %s %s (%s)", next.id, d.Status, d.ErrorCode, d.Error, stepsOf(d))
	case !wantNew && (d.Status != "FAILED" || !d.RolledBack):
		t.Errorf("%s after the crash: %s rolled_back=%v (%s)", next.id, d.Status, d.RolledBack, stepsOf(d))
	}
	if n := strings.Count(stepsOf(d), "commit:done") + strings.Count(stepsOf(d), "rollback:done"); n != 1 {
		t.Errorf("%s finished %d times: %s", next.id, n, stepsOf(d))
	}
	if s.Current.DeploymentID != wantID {
		t.Errorf("current deployment %q, want %q", s.Current.DeploymentID, wantID)
	}
	got := map[string]string{}
	pids := map[string]int{}
	for _, st := range s.Snapshot {
		got[st.Name] = st.Version
		pids[st.Name] = st.Pid
		if st.State != "RUNNING" {
			t.Errorf("%s is %s after the crash", st.Name, st.State)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("runs %v after the crash at %s, want exactly %v", got, checkpoint, want)
	}
	procs := markedProcs(t, r.token, root)
	for name, pid := range pids {
		if p := procs[name]; len(p) != 1 || p[0] != pid {
			t.Errorf("%s: processes %v in /proc, want only its pid %d", name, p, pid)
		}
	}
	for name, p := range procs {
		if _, ok := pids[name]; !ok {
			t.Errorf("%s is not deployed but runs %v", name, p)
		}
	}
	a.stop()
	if left := markedProcs(t, r.token, root); len(left) > 0 {
		t.Errorf("processes left after a clean stop: %v", left)
	}
	st, err := store.Open(context.Background(), r.paths.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(context.Background()); err != nil {
		t.Errorf("integrity_check: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// crashSets: v1 runs a, b (hard on a) and c; v2 updates a (so b restarts),
// removes c and adds d.
func crashSets(bad bool) (manifest, manifest) {
	v1 := manifest{id: "v1", comps: []spec{
		{name: "com.test.a", version: "1.0.0"},
		{name: "com.test.b", version: "1.0.0", deps: []string{"com.test.a"}},
		{name: "com.test.c", version: "1.0.0"},
	}}
	v2 := manifest{id: "v2", comps: []spec{
		{name: "com.test.a", version: "2.0.0"},
		{name: "com.test.b", version: "1.0.0", deps: []string{"com.test.a"}},
		{name: "com.test.d", version: "1.0.0"},
	}}
	if bad {
		v2.comps[0].script, v2.comps[0].restart = "exit 1", "never"
	}
	return v1, v2
}

func TestCrashAtEveryCheckpointEndsInTheNewSet(t *testing.T) {
	for _, cp := range []string{
		"validate:done", "fetch:started", "fetch:done", "plan:done", "stop:started", "stop:done",
		"start:started", "start:done", "commit:started", "commit:done",
	} {
		t.Run(cp, func(t *testing.T) {
			v1, v2 := crashSets(false)
			crashCase(t, v1, v2, cp, true)
		})
	}
}

func TestCrashDuringAFailingDeploymentEndsInTheOldSet(t *testing.T) {
	for _, cp := range []string{"plan:done", "start:started", "start:failed", "rollback:started", "rollback:done"} {
		t.Run(cp, func(t *testing.T) {
			v1, v2 := crashSets(true)
			crashCase(t, v1, v2, cp, false)
		})
	}
}
