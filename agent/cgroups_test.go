package agent

import (
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/runner/cgroup"
)

// Every data folder gets a cgroup root of its own, the same on every start;
// the default folder keeps /keystone; an explicit choice is kept.
func TestCgroupRootPerDataFolder(t *testing.T) {
	def := cgroupsFor(cgroup.Config{}, "/var/lib/keystone")
	if def.Root != cgroup.DefaultRoot {
		t.Fatalf("default data folder: root %q, want %q", def.Root, cgroup.DefaultRoot)
	}
	a := cgroupsFor(cgroup.Config{}, "/tmp/demo/data")
	b := cgroupsFor(cgroup.Config{}, "/tmp/other/data")
	again := cgroupsFor(cgroup.Config{}, "/tmp/demo/data/")
	if a.Root == b.Root || a.Root == cgroup.DefaultRoot || !strings.HasPrefix(a.Root, cgroup.DefaultRoot+"-") {
		t.Fatalf("roots %q and %q: want distinct /keystone-… roots", a.Root, b.Root)
	}
	if again.Root != a.Root {
		t.Fatalf("the same folder got %q then %q", a.Root, again.Root)
	}
	if got := cgroupsFor(cgroup.Config{Root: "/mine"}, "/tmp/x"); got.Root != "/mine" {
		t.Fatalf("explicit root replaced: %q", got.Root)
	}
	if got := cgroupsFor(cgroup.Config{Disabled: true}, "/tmp/x"); got.Root != "" || !got.Disabled {
		t.Fatalf("disabled cgroups got a root: %+v", got)
	}
}
