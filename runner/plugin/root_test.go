package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
)

// An exec plugin is a component process like any other: with
// security.allow_root = false it never runs as root, however run_as or
// default_run_as spell it, nor as a root agent when neither names a user.
func TestExecPluginNeverRunsAsRootWithoutAllowRoot(t *testing.T) {
	r, _ := newRunner(t) // skips, loudly, when not root
	vdir := openDir(t)
	writeScript(t, vdir, "whoami.sh", `printf '{"metrics":[{"name":"uid","type":"gauge","value":%s}]}\n' "$(id -u)"`)
	for _, c := range []struct{ runAs, def string }{
		{"", ""}, {"00", ""}, {"0000000000", ""}, {"4294967296", ""}, {"-0", ""}, {"root", ""}, {"", "00"}, {"", "+0"},
	} {
		rec := pluginRecipe("com.example.whoami", recipes.Plugin{Command: "whoami.sh", Timeout: dur(20 * time.Second)})
		rec.Security.RunAs = c.runAs
		p, err := New(context.Background(), Config{Recipe: rec, VersionDir: vdir, Runner: r, DefaultRunAs: c.def})
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Run(context.Background(), nil)
		_ = p.Close(context.Background())
		if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), "run_as") {
			t.Errorf("run_as %q, default_run_as %q: ran (%+v, %v), want ErrStart", c.runAs, c.def, res, err)
		}
		if c.runAs == "00" && !errors.Is(err, runner.ErrRoot) {
			t.Errorf("run_as 00: err = %v, want runner.ErrRoot", err)
		}
	}
	rec := pluginRecipe("com.example.whoami", recipes.Plugin{Command: "whoami.sh", Timeout: dur(20 * time.Second)})
	res, err := newPlugin(t, Config{Recipe: rec, VersionDir: vdir, Runner: r}).Run(context.Background(), nil)
	if err != nil || len(res.Metrics) != 1 || res.Metrics[0].Value != 0 {
		t.Fatalf("allow_root = true: %+v, %v; want uid 0", res, err)
	}
}
