package runner

import (
	"context"
	"errors"
	"os/user"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner/cgroup"
)

// rootSpellings are run_as values that reach uid 0, or that one reading
// or another could turn into uid 0; "toor" is a second name of root in
// the account database withToor installs.
var rootSpellings = []string{"root", "0", "00", "+0", "4294967296", "-0", "0000000000", "toor", "00:0", "root:root"}

// withToor adds an account "toor" with uid 0 to the lookups by name, as
// BSD systems have.
func withToor(t *testing.T) {
	t.Helper()
	orig := lookupUserName
	lookupUserName = func(name string) (*user.User, error) {
		if name == "toor" {
			return &user.User{Uid: "0", Gid: "0", Username: "toor", HomeDir: "/root"}, nil
		}
		return orig(name)
	}
	t.Cleanup(func() { lookupUserName = orig })
}

// With security.allow_root = false, no spelling of root is let through,
// whether the recipe names it or default_run_as supplies it: it is either
// not a valid run_as at all or it is root by value.
func TestRootSpellingsAreRootOrRefused(t *testing.T) {
	withToor(t)
	for _, v := range rootSpellings {
		for _, c := range []struct{ where, runAs, def string }{{"run_as", v, "nobody"}, {"default_run_as", "", v}} {
			root, err := RunsAsRoot(c.runAs, c.def)
			if !root && err == nil {
				t.Errorf("%s = %q: RunsAsRoot says not root", c.where, v)
			}
			spec, err := SpecFromRecipe(rootRecipe(c.runAs), RecipeContext{VersionDir: "/v", WorkDir: "/w", DefaultRunAs: c.def})
			if err != nil {
				t.Fatal(err)
			}
			if acct, err := CheckRunAs(spec.RunAs, spec.AllowRoot); err == nil {
				t.Errorf("%s = %q: the runner would start it as %+v", c.where, v, acct)
			}
		}
	}
}

// The runner refuses, at the start of a real process, every spelling of
// root while AllowRoot is false; with AllowRoot the numeric ones run, as
// uid 0: they are root, not merely malformed.
func TestStartRefusesEveryRootSpelling(t *testing.T) {
	e := newEnv(t, "", false)
	withToor(t)
	for _, v := range rootSpellings {
		for _, c := range []struct{ where, runAs, def string }{{"run_as", v, ""}, {"default_run_as", "", v}} {
			spec, err := SpecFromRecipe(rootRecipe(c.runAs), RecipeContext{VersionDir: "/v", WorkDir: "/", DefaultRunAs: c.def})
			if err != nil {
				t.Fatal(err)
			}
			spec.Command, spec.Args = "/bin/true", nil
			_, _, err = e.r.Start(context.Background(), spec)
			if err == nil {
				t.Fatalf("%s = %q: started with security.allow_root = false", c.where, v)
			}
			if !strings.Contains(err.Error(), spec.Component) {
				t.Errorf("%s = %q: the error does not name the component: %v", c.where, v, err)
			}
		}
	}
	for _, v := range []string{"00", "0000000000", "toor"} {
		p := e.start(t, ProcessSpec{Component: "com.example.root", Script: "exec sleep 300", RunAs: v, AllowRoot: true})
		if got := uidLine(t, p); got != "Uid:\t0\t0\t0\t0" {
			t.Errorf("run_as %q with allow_root: %q, want uid 0", v, got)
		}
		p.Stop(context.Background(), StopOptions{Signal: 9})
	}
}

func uidLine(t *testing.T, p *Process) string {
	t.Helper()
	return strings.TrimRight(statusLine(t, p.Pid(), "Uid:"), " \t")
}

// An empty run_as is the agent: run by a root agent it is root, refused
// unless allowed. Through SpecFromRecipe as the process launcher builds it.
func TestNoRunAsUnderRootAgentNeedsAllowRoot(t *testing.T) {
	e := newEnv(t, "", false) // skips, loudly, when not root
	for _, allow := range []bool{false, true} {
		spec, err := SpecFromRecipe(rootRecipe(""), RecipeContext{VersionDir: "/v", WorkDir: "/", AllowRoot: allow})
		if err != nil {
			t.Fatal(err)
		}
		spec.Command, spec.Args, spec.Script = "", nil, "exec sleep 300"
		p, _, err := e.r.Start(context.Background(), spec)
		if !allow {
			if !errors.Is(err, ErrRoot) || !strings.Contains(err.Error(), "allow_root") {
				t.Fatalf("no run_as, agent root, allow_root = false: err = %v, want ErrRoot", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("no run_as, allow_root = true: %v", err)
		}
		if got := uidLine(t, p); got != "Uid:\t0\t0\t0\t0" {
			t.Errorf("no run_as with allow_root: %q", got)
		}
		p.Stop(context.Background(), StopOptions{Signal: 9})
	}
}

// The shim checks again where nothing can come between the check and the
// exec: a request for the agent's credentials with NoRoot never execs.
func TestShimRefusesRootItself(t *testing.T) {
	e := newEnv(t, "", true)
	spec := ProcessSpec{Component: "com.example.shimroot", Command: "/bin/true"}
	lg, err := e.logs.Log(spec.Component)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.r.spawn(context.Background(), spec, nil, lg, &cgroup.Group{})
	var se *SetupError
	if !errors.As(err, &se) || se.Step != "refuse root" {
		t.Fatalf("err = %v, want a SetupError at refuse root", err)
	}
}

func TestResolveRunAsReadsIDsByValue(t *testing.T) {
	for in, want := range map[string][2]uint32{
		"00": {0, 0}, "0000001000": {1000, 1000}, "1000:0042": {1000, 42}, "4294967294": {4294967294, 4294967294},
	} {
		acct, err := ResolveRunAs(in)
		if err != nil || acct.UID != want[0] || acct.GID != want[1] {
			t.Errorf("ResolveRunAs(%q) = %+v, %v; want uid %d gid %d", in, acct, err, want[0], want[1])
		}
	}
	for _, in := range []string{
		"4294967296", "4294967297", "99999999999999999999", "4294967295", "1000:4294967295", "1000:4294967296",
		"+0", "-0", "-1", "+1000", "1000:-0", "1000:+0", ":0", "0:",
	} {
		if acct, err := ResolveRunAs(in); err == nil {
			t.Errorf("ResolveRunAs(%q) = %+v, want an error", in, acct)
		}
	}
	if acct, err := ResolveRunAs(""); acct != nil || err != nil {
		t.Errorf(`ResolveRunAs("") = %+v, %v; want nil, nil (as the agent)`, acct, err)
	}
	_, err := ResolveRunAs("4294967296")
	if err == nil || !strings.Contains(err.Error(), "0 to 4294967294") {
		t.Errorf("overflow error %v does not say the range", err)
	}
	_, err = ResolveRunAs("-0")
	if err == nil || !strings.Contains(err.Error(), "sign") {
		t.Errorf("signed id error %v does not say why", err)
	}
}

// rootRecipe is a process recipe with run_as runAs.
func rootRecipe(runAs string) *recipes.Recipe {
	r := processRecipe()
	r.Security.RunAs = runAs
	r.Lifecycle.Run.WorkingDir = ""
	return r
}
