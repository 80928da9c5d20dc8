// Package layering holds the test that keeps the project's import
// directions: the packages that do the work never import the wiring above
// them, so a change that runs back up fails make test.
package layering

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/keystone-edge/keystone"

// rules: every package (but the example programs under recipes/examples,
// which are components, not the format) matching a prefix on the left may not depend, even
// indirectly, on a package matching a prefix on the right.
var rules = []struct {
	from   string
	forbid []string
	why    string
}{
	{"recipes", []string{"agent", "cmd", "comms", "ota", "runner", "store", "supervisor"}, "formats know nothing of who runs them"},
	{"store", []string{"agent", "cmd", "comms", "ota", "runner", "supervisor"}, "the store makes no decisions"},
	{"ota", []string{"agent", "cmd", "comms", "runner", "supervisor"}, "bytes from outside start nothing"},
	{"runner", []string{"agent", "cmd", "comms", "ota", "store", "supervisor"}, "runners know nothing of deployments"},
	{"supervisor", []string{"agent", "cmd", "comms"}, "the engine is driven by the agent, not the other way"},
	{"comms", []string{"agent", "cmd"}, "MQTT drives the engine through its own types"},
	{"agent", []string{"cmd"}, "cmd holds only flags and main"},
}

// shipped are the packages that go into the binaries: none may depend on
// internal (test helpers: brokers, fake clocks).
var shipped = []string{"agent", "cmd", "comms", "ota", "recipes", "runner", "store", "supervisor"}

func init() {
	for _, p := range shipped {
		rules = append(rules, struct {
			from   string
			forbid []string
			why    string
		}{p, []string{"internal"}, "internal holds test helpers, never shipped"})
	}
}

func TestImportDirections(t *testing.T) {
	deps := listDeps(t)
	if len(deps) == 0 {
		t.Fatal("go list found no packages")
	}
	for pkg, imports := range deps {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		for _, rule := range rules {
			if !under(rel, rule.from) || under(rel, "recipes/examples") {
				continue
			}
			for _, dep := range imports {
				depRel, ok := strings.CutPrefix(dep, module+"/")
				if !ok {
					continue
				}
				for _, f := range rule.forbid {
					if under(depRel, f) {
						t.Errorf("%s depends on %s: %s", rel, depRel, rule.why)
					}
				}
			}
		}
	}
}

// The shim runs between fork and exec: the standard library and
// x/sys/unix only.
func TestShimImportsNothingElse(t *testing.T) {
	for _, dep := range listDeps(t)[module+"/runner/shim"] {
		if strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") && dep != "golang.org/x/sys/unix" {
			t.Errorf("runner/shim depends on %s", dep)
		}
	}
}

func under(rel, prefix string) bool {
	return rel == prefix || strings.HasPrefix(rel, prefix+"/")
}

// listDeps maps every package of the module (tests left out) to everything
// it depends on, directly or not.
func listDeps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			deps[fields[0]] = fields[1:]
		}
	}
	return deps
}
