package shim

import (
	"os/exec"
	"strings"
	"testing"
)

// The shim stays a leaf: what it links is what a restart waits for, so
// nothing beyond the standard library and x/sys/unix.
func TestShimImportsOnlyStdlibAndUnix(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"golang.org/x/sys/unix":                         true,
		"github.com/keystone-edge/keystone/runner/shim": true,
	}
	var deps []string
	for _, p := range strings.Fields(string(out)) {
		deps = append(deps, p)
		if !allowed[p] {
			t.Errorf("runner/shim depends on %s", p)
		}
	}
	if len(deps) != len(allowed) {
		t.Errorf("deps = %v, want exactly %v", deps, allowed)
	}
}
