package deploy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// rootSpellings reach uid 0, or could by one reading or another; "root"
// is the name the account database gives uid 0.
var rootSpellings = []string{"root", "0", "00", "+0", "4294967296", "-0", "0000000000"}

func refuseRoot(defaultRunAs string) func(*rigOptions) {
	return func(o *rigOptions) { o.refuseRoot, o.defaultRunAs = true, defaultRunAs }
}

// mustRefuse submits comps and wants VALIDATION_FAILED naming the
// component and saying why, with nothing started.
func mustRefuse(t *testing.T, r *rig, comps []spec, want string) {
	t.Helper()
	_, err := r.eng.Submit(context.Background(), r.request(manifest{comps: comps}))
	var ve *deploy.ValidationError
	if !errors.As(err, &ve) || ve.Code() != deploy.CodeValidation {
		t.Fatalf("Submit error = %v, want VALIDATION_FAILED", err)
	}
	if msg := ve.Error(); !strings.Contains(msg, comps[0].name) || !strings.Contains(msg, want) {
		t.Errorf("problem %q does not name %s and say %q", msg, comps[0].name, want)
	}
	if sts := r.statuses(); len(sts) != 0 {
		t.Errorf("a refused deployment started %v", sts)
	}
}

// With security.allow_root = false every spelling of root is refused at
// deployment time, as the recipe's run_as and as default_run_as alike.
func TestDeploymentRefusesEveryRootSpelling(t *testing.T) {
	r := newRig(t, refuseRoot("nobody"))
	for _, v := range rootSpellings {
		t.Run("run_as="+v, func(t *testing.T) {
			mustRefuse(t, r, []spec{{name: "com.test.root", version: "1.0.0", runAs: v}}, "security.run_as")
		})
		t.Run("default_run_as="+v, func(t *testing.T) {
			mustRefuse(t, newRig(t, refuseRoot(v)), []spec{{name: "com.test.root", version: "1.0.0"}}, "security.run_as")
		})
	}
	mustRefuse(t, r, []spec{{name: "com.test.root", version: "1.0.0", runAs: "00"}},
		"would run as root (uid 0); set security.run_as in the recipe or default_run_as in agent.toml, or allow it with security.allow_root = true")
}

// A root agent with default_run_as = "" runs a component naming no run_as
// only with security.allow_root = true; a component naming a user of its
// own runs either way, as that user.
func TestNoRunAsOnRootAgentNeedsAllowRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: this is about an agent running as root; run the tests as root (CI does)")
	}
	mustRefuse(t, newRig(t, refuseRoot("")), []spec{{name: "com.test.norunas", version: "1.0.0"}}, "would run as root (uid 0)")

	r := newRig(t, refuseRoot(""), reachableByAll(t))
	comps := []spec{{name: "com.test.nobody", version: "1.0.0", runAs: "nobody"}}
	mustSucceed(t, r.deploy(manifest{comps: comps}))
	pid := r.running(versions(comps))["com.test.nobody"]
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err != nil || !strings.Contains(string(b), "\nUid:\t65534\t") {
		t.Errorf("com.test.nobody does not run as nobody: %v\n%s", err, b)
	}

	allowed := newRig(t)
	comps = []spec{{name: "com.test.norunas", version: "1.0.0"}}
	mustSucceed(t, allowed.deploy(manifest{comps: comps}))
	allowed.running(versions(comps))
}

// reachableByAll opens the data folder to other users, as the agent makes
// it, so that a component running as nobody can enter its work folder.
func reachableByAll(t *testing.T) func(*rigOptions) {
	return func(o *rigOptions) {
		o.before = func(dir string) {
			for _, d := range []string{filepath.Dir(dir), dir, filepath.Join(dir, "work")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
