package deploy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/ota"
	"github.com/keystone-edge/keystone/recipes"
)

// placedAt is a Fetcher that only names version folders.
type placedAt string

func (placedAt) Fetch(context.Context, []*recipes.Recipe, ota.ProgressFunc) error { return nil }
func (placedAt) GC(context.Context, []*recipes.Recipe) (ota.GCResult, error) {
	return ota.GCResult{}, nil
}
func (placedAt) RemoveVersion(string, string) error { return nil }
func (p placedAt) VersionDir(n, v string) string    { return string(p) + "/" + n + "/" + v }

// TestSetKeepsHardDependents: the set keeps, from its graph, who a failed
// component keeps from starting (hard dependencies, directly or through
// another; soft ones never).
func TestSetKeepsHardDependents(t *testing.T) {
	recipe := func(name string, deps ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "format = 1\n[metadata]\nname = %q\nversion = \"1.0.0\"\nkind = \"process\"\n[lifecycle.run]\ncommand = \"/bin/true\"\n", name)
		for _, d := range deps {
			dep, typ, _ := strings.Cut(d, ":")
			fmt.Fprintf(&b, "[[dependencies]]\nname = %q\nversion = \">=1.0.0\"\ntype = %q\n", dep, typ)
		}
		return b.String()
	}
	texts := map[string]string{
		"t.a": recipe("t.a"),
		"t.b": recipe("t.b", "t.a:hard"),
		"t.c": recipe("t.c", "t.b:hard"),
		"t.d": recipe("t.d", "t.a:soft"),
	}
	var m strings.Builder
	m.WriteString("format = 1\n[deployment]\nid = \"x\"\n")
	for _, n := range []string{"t.a", "t.b", "t.c", "t.d"} {
		fmt.Fprintf(&m, "[[components]]\nname = %q\nversion = \"1.0.0\"\n", n)
	}
	e := &Engine{cfg: Config{Fetcher: placedAt(t.TempDir()), WorkDir: t.TempDir(), DeviceID: "d"}}
	s, err := e.rebuildSet("x", m.String(), texts, admitRecorded)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"t.a": {"t.b", "t.c"}, "t.b": {"t.c"}}
	if !reflect.DeepEqual(s.hardDependents, want) {
		t.Errorf("hard dependents = %v, want %v", s.hardDependents, want)
	}
}
