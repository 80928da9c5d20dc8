package supervisor

import (
	"fmt"
	"strings"
	"testing"
)

// set builds reconcile input from lines "name STATE[+retrying|+starting] [unwanted] [busy] hard=a,b soft=c".
func set(lines ...string) map[string]*node {
	nodes := map[string]*node{}
	for _, l := range lines {
		f := strings.Fields(l)
		nd := &node{Wanted: true, StopReason: "stop requested"}
		stateName, mod, _ := strings.Cut(f[1], "+")
		st, err := ParseState(stateName)
		if err != nil {
			panic(err)
		}
		nd.Status = Status{Name: f[0], State: st, Retrying: mod == "retrying"}
		if mod == "starting" {
			nd.Status.Health = HealthStarting
		}
		for _, w := range f[2:] {
			switch {
			case w == "unwanted":
				nd.Wanted = false
			case w == "busy":
				nd.Busy = true
			case strings.HasPrefix(w, "hard="):
				nd.Hard = strings.Split(strings.TrimPrefix(w, "hard="), ",")
			case strings.HasPrefix(w, "soft="):
				nd.Soft = strings.Split(strings.TrimPrefix(w, "soft="), ",")
			}
		}
		nodes[f[0]] = nd
	}
	return nodes
}

func render(acts []action) string {
	var out []string
	for _, a := range acts {
		verb := "stop"
		if a.Start {
			verb = "start"
		}
		out = append(out, fmt.Sprintf("%s %s (%s)", verb, a.Name, a.Reason))
	}
	return strings.Join(out, "; ")
}

func TestReconcile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes map[string]*node
		want  string
	}{
		{"layer 0 first", set("db INSTALLED", "app INSTALLED hard=db", "logs INSTALLED soft=db"),
			"start db (start requested)"},
		{"hard waits for healthy", set("db RUNNING+starting", "app INSTALLED hard=db"), ""},
		{"then the next layer in parallel", set("db RUNNING", "app INSTALLED hard=db", "logs INSTALLED soft=db"),
			"start app (dependencies ready); start logs (dependencies ready)"},
		{"soft does not wait for a failed dependency", set("db BROKEN", "logs INSTALLED soft=db", "app INSTALLED hard=db"),
			"start logs (dependencies ready)"},
		{"soft waits for one about to start", set("db STOPPED hard=x", "x RUNNING+starting", "logs INSTALLED soft=db"), ""},
		{"dependents stop first, the leaf at once", set("db ERRORED+retrying", "app RUNNING hard=db", "web RUNNING hard=app", "logs RUNNING soft=db"),
			"stop web (hard dependency app is going down)"},
		{"then the middle", set("db ERRORED+retrying", "app RUNNING hard=db", "web STOPPING hard=app"), ""},
		{"then the middle once the leaf is down", set("db ERRORED+retrying", "app RUNNING hard=db", "web STOPPED hard=app"),
			"stop app (hard dependency db is ERRORED)"},
		{"stop by hand waits for dependents", set("db RUNNING unwanted", "app RUNNING hard=db", "web RUNNING hard=app", "logs RUNNING soft=db"),
			"stop web (hard dependency app is going down)"},
		{"and a busy dependent blocks", set("db RUNNING unwanted", "app STOPPED busy hard=db"), ""},
		{"shutdown waits for soft dependents too", set("db RUNNING unwanted", "logs RUNNING unwanted soft=db"),
			"stop logs (stop requested)"},
		{"a retrying dependent is stopped, not left to restart", set("db ERRORED+retrying", "app ERRORED+retrying hard=db"),
			"stop app (hard dependency db is ERRORED)"},
		{"recovered: start again", set("db RUNNING", "app STOPPED hard=db", "web STOPPED hard=app"),
			"start app (dependencies ready)"},
		{"failed ones are left alone", set("db RUNNING", "app BROKEN hard=db", "x FINISHED", "y ERRORED"), ""},
		{"busy is left alone", set("db INSTALLED busy"), ""},
	} {
		if got := render(actionsOf(tc.nodes)); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// A stop for a hard dependency is marked so, for the core to record as
// FailureDependency; a stop of an unwanted component is not.
func TestReconcileMarksDependencyStops(t *testing.T) {
	acts, _ := reconcile(set("db ERRORED+retrying", "app RUNNING hard=db", "x RUNNING unwanted"))
	got := map[string]bool{}
	for _, a := range acts {
		if !a.Start {
			got[a.Name] = a.Dependency
		}
	}
	if dep, ok := got["app"]; !ok || !dep {
		t.Errorf("app's stop for its dependency: %+v", acts)
	}
	if dep, ok := got["x"]; !ok || dep {
		t.Errorf("x's stop by hand: %+v", acts)
	}
}

func actionsOf(nodes map[string]*node) []action {
	acts, _ := reconcile(nodes)
	return acts
}
