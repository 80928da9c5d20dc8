package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/internal/proctest"
	"github.com/keystone-edge/keystone/ota/sign"
)

// The crash tests deploy a set, then another with the agent SIGKILLing
// itself at one checkpoint of the deployment, and start the agent again:
// the device must end in exactly the new set (or, for a deployment that
// fails, exactly the old one), each component running one process, the
// deployment finished once, the store intact. Each agent is a real one in
// a process of its own (see procAgent), driven through its local API.

// crashDevice is a device for the crash tests: signed recipes only, and a
// token marking its components' processes in /proc.
type crashDevice struct {
	*procEnv
	key   ed25519.PrivateKey
	token string
}

func newCrashDevice(t *testing.T) *crashDevice {
	t.Helper()
	pub, key, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "trusted.pub")
	if err := sign.WritePublicKey(pubFile, pub); err != nil {
		t.Fatal(err)
	}
	token := make([]byte, 6)
	_, _ = rand.Read(token)
	return &crashDevice{
		procEnv: newProcEnv(t, fmt.Sprintf("[trust]\nkeys = [%q]\n", pubFile)),
		key:     key, token: hex.EncodeToString(token),
	}
}

// spec describes a test component's recipe.
type spec struct {
	name, version string
	script        string   // default: exec sleep 600
	deps          []string // hard dependencies
	restart       string   // restart_policy; default on-failure
}

// manifest describes a deployment: its id and components.
type manifest struct {
	id    string
	comps []spec
}

// recipe writes s as recipe TOML. Every process carries KS_MARK =
// "<token>:<name>" in its environment, so /proc tells whose it is.
func (d *crashDevice) recipe(s spec) string {
	script, restart := s.script, s.restart
	if script == "" {
		script = "exec sleep 600"
	}
	if restart == "" {
		restart = "on-failure"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "format = 1\n[metadata]\nname = %q\nversion = %q\nkind = \"process\"\n", s.name, s.version)
	fmt.Fprintf(&b, "[lifecycle.run]\nscript = %q\nenv = { KS_MARK = %q }\n", script, d.token+":"+s.name)
	fmt.Fprintf(&b, "restart_policy = %q\nrestart_backoff = { initial = \"0s\", max = \"100ms\" }\n", restart)
	b.WriteString("max_restarts = { count = 2, window = \"1m\" }\nstop_timeout = \"5s\"\n")
	for _, dep := range s.deps {
		fmt.Fprintf(&b, "[[dependencies]]\nname = %q\ntype = \"hard\"\n", dep)
	}
	return b.String()
}

// request is m as a deployment request, every recipe signed with the
// device's trusted key.
func (d *crashDevice) request(m manifest) api.DeploymentRequest {
	var b strings.Builder
	fmt.Fprintf(&b, "format = 1\n[deployment]\nid = %q\nfailure_policy = \"rollback\"\nhealth_timeout = \"20s\"\n", m.id)
	files := map[string][]byte{}
	for _, s := range m.comps {
		file := s.name + ".recipe.toml"
		text := []byte(d.recipe(s))
		files[file] = text
		files[file+".sig"] = sign.EncodeSignature(sign.Sign(d.key, text))
		fmt.Fprintf(&b, "[[components]]\nname = %q\nversion = %q\nrecipe = %q\n", s.name, s.version, file)
	}
	return api.DeploymentRequest{Manifest: b.String(), Files: files}
}

// markedProcs maps each component to the live pids that are its own.
func (d *crashDevice) markedProcs(t testing.TB) map[string][]int {
	t.Helper()
	out, err := proctest.Marked(d.token, d.root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func versions(comps []spec) map[string]string {
	out := map[string]string{}
	for _, c := range comps {
		out[c.name] = c.version
	}
	return out
}

// crashCase deploys old, then next with a SIGKILL at checkpoint, restarts
// and checks the device ends in exactly the set wantNew says.
func crashCase(t *testing.T, old, next manifest, checkpoint string, wantNew bool) {
	d := newCrashDevice(t)
	a := d.start(t, startOptions{})
	a.deploy(d.request(old))
	if list, _ := a.settle(); current(list) != old.id {
		t.Fatalf("first deployment: %+v\nstderr:\n%s", list, a.stderr)
	}
	a.stop()

	a = d.start(t, startOptions{crashAt: checkpoint})
	a.deploy(d.request(next))
	a.killed(checkpoint)

	a = d.start(t, startOptions{})
	list, comps := a.settle()
	want, wantID := versions(old.comps), old.id
	if wantNew {
		want, wantID = versions(next.comps), next.id
	}
	dep := a.deployment(next.id)
	switch {
	case wantNew && dep.Status != "SUCCEEDED":
		t.Errorf("%s after the crash: %s %s %s (%s)", next.id, dep.Status, dep.ErrorCode, dep.Error, stepsOf(dep))
	case !wantNew && (dep.Status != "FAILED" || !dep.RolledBack):
		t.Errorf("%s after the crash: %s rolled_back=%v (%s)", next.id, dep.Status, dep.RolledBack, stepsOf(dep))
	}
	if n := strings.Count(stepsOf(dep), "commit:done") + strings.Count(stepsOf(dep), "rollback:done"); n != 1 {
		t.Errorf("%s finished %d times: %s", next.id, n, stepsOf(dep))
	}
	if id := current(list); id != wantID {
		t.Errorf("current deployment %q, want %q", id, wantID)
	}
	got := map[string]string{}
	pids := map[string]int{}
	for _, c := range comps {
		got[c.Name] = c.Version
		pids[c.Name] = c.Pid
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("runs %v after the crash at %s, want exactly %v", got, checkpoint, want)
	}
	procs := d.markedProcs(t)
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
	for _, pid := range pids {
		waitGone(t, pid)
	}
	if left := d.markedProcs(t); len(left) > 0 {
		t.Errorf("processes left after a clean stop: %v", left)
	}
	if err := openStore(t, d.procEnv).Check(context.Background()); err != nil {
		t.Errorf("integrity_check: %v", err)
	}
}

// crashSets: v1 runs a, b (hard on a) and c; v2 updates a (so b restarts),
// removes c and adds d. Bad, v2's a exits at once and is not restarted.
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
			t.Parallel()
			v1, v2 := crashSets(false)
			crashCase(t, v1, v2, cp, true)
		})
	}
}

func TestCrashDuringAFailingDeploymentEndsInTheOldSet(t *testing.T) {
	for _, cp := range []string{"plan:done", "start:started", "start:failed", "rollback:started", "rollback:done"} {
		t.Run(cp, func(t *testing.T) {
			t.Parallel()
			v1, v2 := crashSets(true)
			crashCase(t, v1, v2, cp, false)
		})
	}
}
