package deploy

import (
	"reflect"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor"
)

// pc builds a rendered component for plan tests.
func pc(name, version string, mods ...func(*recipes.Recipe)) *supervisor.Component {
	r := &recipes.Recipe{
		Format:   1,
		Metadata: recipes.Metadata{Name: name, Version: version, Kind: recipes.KindProcess},
		Lifecycle: recipes.Lifecycle{Run: &recipes.Run{
			Command: "/bin/sleep", Args: []string{"600"}, Env: map[string]string{"A": "1"},
		}},
	}
	for _, m := range mods {
		m(r)
	}
	return &supervisor.Component{Recipe: r, VersionDir: "/c/" + name + "/" + version, WorkDir: "/w/" + name}
}

func hard(dep string) func(*recipes.Recipe) {
	return func(r *recipes.Recipe) {
		r.Dependencies = append(r.Dependencies, recipes.Dependency{Name: dep, Type: recipes.DependencyHard})
	}
}

func soft(dep string) func(*recipes.Recipe) {
	return func(r *recipes.Recipe) {
		r.Dependencies = append(r.Dependencies, recipes.Dependency{Name: dep, Type: recipes.DependencySoft})
	}
}

func args(a ...string) func(*recipes.Recipe) {
	return func(r *recipes.Recipe) { r.Lifecycle.Run.Args = a }
}

func comps(cs ...*supervisor.Component) map[string]*supervisor.Component {
	out := map[string]*supervisor.Component{}
	for _, c := range cs {
		out[c.Name()] = c
	}
	return out
}

func TestComputePlan(t *testing.T) {
	tests := []struct {
		name             string
		current, desired map[string]*supervisor.Component
		states           map[string]supervisor.Status
		want             []PlanItem
	}{
		{
			name:    "first deployment adds everything",
			current: comps(),
			desired: comps(pc("a", "1.0.0"), pc("b", "1.0.0", hard("a"))),
			want: []PlanItem{
				{Component: "a", Action: ActionAdd, ToVersion: "1.0.0", Reason: "not installed"},
				{Component: "b", Action: ActionAdd, ToVersion: "1.0.0", Reason: "not installed"},
			},
		},
		{
			name:    "same set changes nothing",
			current: comps(pc("a", "1.0.0"), pc("b", "1.0.0", hard("a"))),
			desired: comps(pc("a", "1.0.0"), pc("b", "1.0.0", hard("a"))),
			want: []PlanItem{
				{Component: "a", Action: ActionUnchanged, FromVersion: "1.0.0", ToVersion: "1.0.0"},
				{Component: "b", Action: ActionUnchanged, FromVersion: "1.0.0", ToVersion: "1.0.0"},
			},
		},
		{
			name: "version bump restarts hard dependents transitively, not soft ones",
			current: comps(pc("a", "1.0.0"), pc("b", "1.0.0", hard("a")), pc("c", "1.0.0", hard("b")),
				pc("d", "1.0.0", soft("a")), pc("e", "1.0.0")),
			desired: comps(pc("a", "1.1.0"), pc("b", "1.0.0", hard("a")), pc("c", "1.0.0", hard("b")),
				pc("d", "1.0.0", soft("a")), pc("e", "1.0.0")),
			want: []PlanItem{
				{Component: "a", Action: ActionUpdate, FromVersion: "1.0.0", ToVersion: "1.1.0", Reason: "version 1.0.0 -> 1.1.0"},
				{Component: "b", Action: ActionRestart, FromVersion: "1.0.0", ToVersion: "1.0.0", Reason: "hard dependency a restarts"},
				{Component: "c", Action: ActionRestart, FromVersion: "1.0.0", ToVersion: "1.0.0", Reason: "hard dependency b restarts"},
				{Component: "d", Action: ActionUnchanged, FromVersion: "1.0.0", ToVersion: "1.0.0"},
				{Component: "e", Action: ActionUnchanged, FromVersion: "1.0.0", ToVersion: "1.0.0"},
			},
		},
		{
			name:    "leaf bump touches only the leaf",
			current: comps(pc("a", "1.0.0"), pc("b", "1.0.0", hard("a"))),
			desired: comps(pc("a", "1.0.0"), pc("b", "2.0.0", hard("a"))),
			want: []PlanItem{
				{Component: "a", Action: ActionUnchanged, FromVersion: "1.0.0", ToVersion: "1.0.0"},
				{Component: "b", Action: ActionUpdate, FromVersion: "1.0.0", ToVersion: "2.0.0", Reason: "version 1.0.0 -> 2.0.0"},
			},
		},
		{
			name:    "config-only change is a reconfigure naming the fields",
			current: comps(pc("a", "1.0.0"), pc("b", "1.0.0")),
			desired: comps(pc("a", "1.0.0", args("--port", "81")), pc("b", "1.0.0")),
			want: []PlanItem{
				{Component: "a", Action: ActionReconfigure, FromVersion: "1.0.0", ToVersion: "1.0.0", Reason: "changed: lifecycle.run.args"},
				{Component: "b", Action: ActionUnchanged, FromVersion: "1.0.0", ToVersion: "1.0.0"},
			},
		},
		{
			name:    "removed and added",
			current: comps(pc("a", "1.0.0"), pc("old", "1.0.0")),
			desired: comps(pc("a", "1.0.0"), pc("new", "3.0.0")),
			want: []PlanItem{
				{Component: "a", Action: ActionUnchanged, FromVersion: "1.0.0", ToVersion: "1.0.0"},
				{Component: "new", Action: ActionAdd, ToVersion: "3.0.0", Reason: "not installed"},
				{Component: "old", Action: ActionRemove, FromVersion: "1.0.0", Reason: "not in the deployment"},
			},
		},
		{
			name:    "an unchanged component that is BROKEN is started again",
			current: comps(pc("a", "1.0.0"), pc("b", "1.0.0")),
			desired: comps(pc("a", "1.0.0"), pc("b", "1.0.0")),
			states: map[string]supervisor.Status{
				"a": {Name: "a", State: supervisor.StateBroken},
				"b": {Name: "b", State: supervisor.StateRunning},
			},
			want: []PlanItem{
				{Component: "a", Action: ActionRestart, FromVersion: "1.0.0", ToVersion: "1.0.0", Reason: "BROKEN: started again"},
				{Component: "b", Action: ActionUnchanged, FromVersion: "1.0.0", ToVersion: "1.0.0"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := computePlan(tt.current, tt.desired, tt.states)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestChangedFields(t *testing.T) {
	a := pc("a", "1.0.0")
	b := pc("a", "1.0.0", args("x"), func(r *recipes.Recipe) {
		r.Lifecycle.Run.Env = map[string]string{"A": "2"}
		r.Resources.MemoryLimit = 1 << 20
	})
	b.Secrets = map[string]string{"TOKEN": "s3cret"}
	got := changedFields(a, b)
	want := []string{"lifecycle.run.args", "lifecycle.run.env", "resources.memory_limit", "secrets"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changedFields = %v, want %v", got, want)
	}
	for _, f := range got {
		if f == "s3cret" {
			t.Fatal("a secret value leaked into the plan")
		}
	}
}

func TestSummarize(t *testing.T) {
	plan := computePlan(comps(pc("a", "1.0.0"), pc("b", "1.0.0", hard("a")), pc("c", "1.0.0")),
		comps(pc("a", "2.0.0"), pc("b", "1.0.0", hard("a")), pc("d", "1.0.0")), nil)
	if got, want := summarize(plan), "1 add, 1 update, 1 remove, 1 restart"; got != want {
		t.Fatalf("summarize = %q, want %q", got, want)
	}
	if summarize(nil) != "nothing to do" {
		t.Fatal("an empty plan should do nothing")
	}
}
