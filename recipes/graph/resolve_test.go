package graph_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/recipes/graph"
)

func TestResolveOrders(t *testing.T) {
	chain := func(n int) ([]recipes.ComponentRef, []*recipes.Recipe, [][]string) {
		var avail []*recipes.Recipe
		var layers [][]string
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("c%03d", i)
			var deps []recipes.Dependency
			if i > 0 {
				deps = append(deps, hard(fmt.Sprintf("c%03d", i-1), ">=1.0.0"))
			}
			avail = append(avail, rec(name, "1.0.0", deps...))
			layers = append(layers, []string{name})
		}
		return []recipes.ComponentRef{root(fmt.Sprintf("c%03d", n-1), "1.0.0")}, avail, layers
	}
	chainRoots, chainAvail, chainLayers := chain(200)

	tests := []struct {
		name      string
		roots     []recipes.ComponentRef
		available []*recipes.Recipe
		layers    [][]string
		versions  map[string]string // expected picks, when checked
	}{
		{
			name:  "single component",
			roots: []recipes.ComponentRef{root("a", "1.0.0")},
			available: []*recipes.Recipe{
				rec("a", "1.0.0"), rec("a", "2.0.0"), rec("unused", "1.0.0"),
			},
			layers:   [][]string{{"a"}},
			versions: map[string]string{"a": "1.0.0"},
		},
		{
			name:  "diamond",
			roots: []recipes.ComponentRef{root("app", "1.0.0")},
			available: []*recipes.Recipe{
				rec("app", "1.0.0", hard("left", ""), hard("right", "")),
				rec("left", "1.0.0", hard("db", ">=1.0.0")),
				rec("right", "1.0.0", soft("db", "^1.2.0")),
				rec("db", "1.1.0"), rec("db", "1.3.0"), rec("db", "2.0.0"),
			},
			layers:   [][]string{{"db"}, {"left", "right"}, {"app"}},
			versions: map[string]string{"db": "1.3.0", "left": "1.0.0", "right": "1.0.0"},
		},
		{
			name:      "deep chain of 200",
			roots:     chainRoots,
			available: chainAvail,
			layers:    chainLayers,
		},
		{
			name:  "independent roots share a layer",
			roots: []recipes.ComponentRef{root("b", "1.0.0"), root("a", "1.0.0"), root("c", "1.0.0")},
			available: []*recipes.Recipe{
				rec("a", "1.0.0"), rec("b", "1.0.0"), rec("c", "1.0.0", hard("a", "")),
			},
			layers: [][]string{{"a", "b"}, {"c"}},
		},
		{
			name:  "highest version meeting every range",
			roots: []recipes.ComponentRef{root("a", "1.0.0"), root("c", "1.0.0")},
			available: []*recipes.Recipe{
				rec("a", "1.0.0", hard("b", "")),
				rec("c", "1.0.0", hard("b", "<2.0.0")),
				rec("b", "1.0.0"), rec("b", "1.9.0"), rec("b", "2.0.0"), rec("b", "3.0.0-rc.1"),
			},
			layers:   [][]string{{"b"}, {"a", "c"}},
			versions: map[string]string{"b": "1.9.0"},
		},
		{
			name:  "a lower pick drops the dependencies of the higher one",
			roots: []recipes.ComponentRef{root("a", "1.0.0")},
			available: []*recipes.Recipe{
				// b@2 needs x, which is not on offer; a's own range rules b@2 out
				// only through c, reached after b was first picked.
				rec("a", "1.0.0", hard("b", ""), hard("c", "")),
				rec("c", "1.0.0", hard("b", "<2.0.0")),
				rec("b", "2.0.0", hard("x", "")),
				rec("b", "1.0.0"),
			},
			layers:   [][]string{{"b"}, {"c"}, {"a"}},
			versions: map[string]string{"b": "1.0.0"},
		},
		{
			name:  "root pinned below the highest offer",
			roots: []recipes.ComponentRef{root("a", "1.0.0"), root("b", "1.5.0")},
			available: []*recipes.Recipe{
				rec("a", "1.0.0", hard("b", ">=1.0.0")),
				rec("b", "1.5.0"), rec("b", "1.8.0"),
			},
			layers:   [][]string{{"b"}, {"a"}},
			versions: map[string]string{"b": "1.5.0"},
		},
		{
			name:  "same recipe offered twice is fine",
			roots: []recipes.ComponentRef{root("a", "1.0.0")},
			available: func() []*recipes.Recipe {
				a := rec("a", "1.0.0")
				return []*recipes.Recipe{a, a}
			}(),
			layers: [][]string{{"a"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := graph.Resolve(tt.roots, tt.available)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got := layersOf(g); !reflect.DeepEqual(got, tt.layers) {
				t.Errorf("layers of the edges = %v, want %v", got, tt.layers)
			}
			for name, v := range tt.versions {
				r, ok := g.Recipe(name)
				if !ok || r.Metadata.Version != v {
					t.Errorf("Recipe(%s) = %v, %v; want version %s", name, r, ok, v)
				}
			}
			names := g.Names()
			if !slices.IsSorted(names) || g.Len() != len(names) {
				t.Errorf("Names() = %v (Len %d), want sorted", names, g.Len())
			}
			for i, r := range g.Components() {
				if r.Metadata.Name != names[i] {
					t.Errorf("Components()[%d] = %s, want %s", i, r.Metadata.Name, names[i])
				}
			}
			checkLayersRespectEdges(t, g)
		})
	}
}

// checkLayersRespectEdges fails unless the edges form a DAG that holds
// every component: each dependency sits in an earlier layer than its
// dependent.
func checkLayersRespectEdges(t *testing.T, g *graph.Graph) {
	t.Helper()
	layerOf := map[string]int{}
	for i, l := range layersOf(g) {
		for _, n := range l {
			layerOf[n] = i
		}
	}
	if len(layerOf) != g.Len() {
		t.Fatalf("layers hold %d components, graph has %d", len(layerOf), g.Len())
	}
	for _, n := range g.Names() {
		for _, e := range g.Dependencies(n) {
			if layerOf[e.Dependency] >= layerOf[n] {
				t.Errorf("%s (layer %d) needs %s (layer %d)", n, layerOf[n], e.Dependency, layerOf[e.Dependency])
			}
		}
	}
}

func TestResolveProblems(t *testing.T) {
	tests := []struct {
		name      string
		roots     []recipes.ComponentRef
		available []*recipes.Recipe
		want      []wantProblem
	}{
		{
			name:  "cycle of 3",
			roots: []recipes.ComponentRef{root("b", "1.0.0")},
			available: []*recipes.Recipe{
				rec("a", "1.0.0", hard("b", "")),
				rec("b", "1.0.0", hard("c", "")),
				rec("c", "1.0.0", soft("a", "")),
			},
			want: []wantProblem{{graph.ErrCycle, "dependency cycle: a -> b -> c -> a", []string{"a", "b", "c"}}},
		},
		{
			name:      "self dependency",
			roots:     []recipes.ComponentRef{root("a", "1.0.0")},
			available: []*recipes.Recipe{rec("a", "1.0.0", hard("a", ""))},
			want:      []wantProblem{{graph.ErrCycle, "dependency cycle: a -> a", []string{"a"}}},
		},
		{
			name:  "two separate cycles",
			roots: []recipes.ComponentRef{root("x", "1.0.0")},
			available: []*recipes.Recipe{
				rec("x", "1.0.0", hard("p", ""), hard("r", "")),
				rec("p", "1.0.0", hard("q", "")), rec("q", "1.0.0", hard("p", "")),
				rec("r", "1.0.0", hard("s", "")), rec("s", "1.0.0", hard("t", "")), rec("t", "1.0.0", hard("r", "")),
			},
			want: []wantProblem{
				{graph.ErrCycle, "dependency cycle: p -> q -> p", []string{"p", "q"}},
				{graph.ErrCycle, "dependency cycle: r -> s -> t -> r", []string{"r", "s", "t"}},
			},
		},
		{
			name:      "missing dependency",
			roots:     []recipes.ComponentRef{root("com.a", "1.0.0")},
			available: []*recipes.Recipe{rec("com.a", "1.0.0", hard("com.b", ">=1.0.0"))},
			want: []wantProblem{{graph.ErrMissing,
				"com.a needs com.b (>=1.0.0), which is not in the deployment", []string{"com.a", "com.b"}}},
		},
		{
			name:      "missing soft dependency is missing too",
			roots:     []recipes.ComponentRef{root("com.a", "1.0.0")},
			available: []*recipes.Recipe{rec("com.a", "1.0.0", soft("com.b", ""))},
			want: []wantProblem{{graph.ErrMissing,
				"com.a needs com.b (any version), which is not in the deployment", []string{"com.a", "com.b"}}},
		},
		{
			name:      "root version not on offer",
			roots:     []recipes.ComponentRef{root("a", "1.2.0")},
			available: []*recipes.Recipe{rec("a", "1.0.0"), rec("a", "1.1.0")},
			want: []wantProblem{{graph.ErrMissing,
				"the deployment asks for a@1.2.0, which is not on offer (offered: 1.1.0, 1.0.0)", []string{"a"}}},
		},
		{
			name:  "version range conflict between two dependents",
			roots: []recipes.ComponentRef{root("com.a", "1.0.0"), root("com.c", "1.0.0")},
			available: []*recipes.Recipe{
				rec("com.a", "1.0.0", hard("com.b", ">=2.0.0")),
				rec("com.c", "1.0.0", hard("com.b", "<2.0.0")),
				rec("com.b", "1.5.0"), rec("com.b", "2.1.0"),
			},
			want: []wantProblem{{graph.ErrConflict,
				"version conflict on com.b: com.a@1.0.0 needs >=2.0.0, com.c@1.0.0 needs <2.0.0; offered: 2.1.0, 1.5.0",
				[]string{"com.b", "com.a", "com.c"}}},
		},
		{
			name:  "range no offered version meets",
			roots: []recipes.ComponentRef{root("a", "1.0.0")},
			available: []*recipes.Recipe{
				rec("a", "1.0.0", hard("b", ">=3.0.0")), rec("b", "1.0.0"), rec("b", "2.0.0"),
			},
			want: []wantProblem{{graph.ErrConflict,
				"version conflict on b: a@1.0.0 needs >=3.0.0; offered: 2.0.0, 1.0.0", []string{"b", "a"}}},
		},
		{
			name:  "root pin violates a dependent's range",
			roots: []recipes.ComponentRef{root("com.a", "1.0.0"), root("com.b", "1.5.0")},
			available: []*recipes.Recipe{
				rec("com.a", "1.0.0", hard("com.b", ">=2.0.0")), rec("com.b", "1.5.0"), rec("com.b", "2.0.0"),
			},
			want: []wantProblem{{graph.ErrConflict,
				"version conflict: com.a@1.0.0 needs com.b (>=2.0.0), but the deployment pins com.b@1.5.0",
				[]string{"com.a", "com.b"}}},
		},
		{
			name:  "every problem at once",
			roots: []recipes.ComponentRef{root("app", "1.0.0")},
			available: []*recipes.Recipe{
				rec("app", "1.0.0", hard("gone", ""), hard("loop1", ""), hard("old", ">=2.0.0"), hard("bad", "not a range")),
				rec("loop1", "1.0.0", hard("loop2", "")), rec("loop2", "1.0.0", hard("loop1", "")),
				rec("old", "1.0.0"), rec("bad", "1.0.0"),
			},
			want: []wantProblem{
				{graph.ErrInvalid, `app@1.0.0: dependency bad: invalid version range "not a range"`, []string{"app", "bad"}},
				{graph.ErrMissing, "app needs gone (any version), which is not in the deployment", []string{"app", "gone"}},
				{graph.ErrConflict, "version conflict on old: app@1.0.0 needs >=2.0.0; offered: 1.0.0", []string{"old", "app"}},
				{graph.ErrCycle, "dependency cycle: loop1 -> loop2 -> loop1", []string{"loop1", "loop2"}},
			},
		},
		{
			// Under "highest version meeting every range" x and y chase each
			// other for ever: x@2 excludes y@1, y@2 excludes x@2, x@1 excludes
			// y@2, and y@1 lets x go back to 2.
			name:  "versions that never settle",
			roots: []recipes.ComponentRef{root("r", "1.0.0")},
			available: []*recipes.Recipe{
				rec("r", "1.0.0", hard("x", ""), hard("y", "")),
				rec("x", "2.0.0", hard("y", ">=2.0.0")), rec("x", "1.0.0", hard("y", "<2.0.0")),
				rec("y", "2.0.0", soft("x", "<2.0.0")), rec("y", "1.0.0"),
			},
			want: []wantProblem{{graph.ErrConflict, "version conflict: the versions of x, y do not settle", []string{"x", "y"}}},
		},
		{
			name:      "duplicate root",
			roots:     []recipes.ComponentRef{root("a", "1.0.0"), root("a", "2.0.0")},
			available: []*recipes.Recipe{rec("a", "1.0.0"), rec("a", "2.0.0")},
			want:      []wantProblem{{graph.ErrInvalid, "the deployment lists a more than once", []string{"a"}}},
		},
		{
			name:      "root version is a range",
			roots:     []recipes.ComponentRef{root("a", "^1.0.0")},
			available: []*recipes.Recipe{rec("a", "1.0.0")},
			want: []wantProblem{{graph.ErrInvalid,
				`the deployment pins a to "^1.0.0", which is not an exact semver 2.0 version`, []string{"a"}}},
		},
		{
			name:  "bad dependency type and duplicate entry",
			roots: []recipes.ComponentRef{root("a", "1.0.0")},
			available: []*recipes.Recipe{
				rec("a", "1.0.0", recipes.Dependency{Name: "b", Type: "weak"}, hard("b", "")), rec("b", "1.0.0"),
			},
			want: []wantProblem{
				{graph.ErrInvalid, "a@1.0.0 lists dependency b more than once", []string{"a", "b"}},
				{graph.ErrInvalid, `a@1.0.0: dependency b: type "weak" must be hard or soft`, []string{"a", "b"}},
			},
		},
		{
			name:  "two different recipes for one version",
			roots: []recipes.ComponentRef{root("a", "1.0.0")},
			available: []*recipes.Recipe{
				rec("a", "1.0.0"), {Metadata: recipes.Metadata{Name: "a", Version: "1.0.0"}, Source: "other.recipe.toml"},
			},
			want: []wantProblem{{graph.ErrInvalid,
				"a@1.0.0 is offered by two different recipes (a-1.0.0.recipe.toml, other.recipe.toml)", []string{"a"}}},
		},
		{
			name:      "offered version is not semver",
			roots:     []recipes.ComponentRef{root("a", "1.0.0")},
			available: []*recipes.Recipe{rec("a", "1.0.0"), rec("a", "v1.1"), nil},
			want: []wantProblem{
				{graph.ErrInvalid, `a: version "v1.1" is not semver 2.0`, []string{"a"}},
				{graph.ErrInvalid, "recipe #2 on offer is nil", nil},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := graph.Resolve(tt.roots, tt.available)
			if g != nil {
				t.Errorf("Resolve returned a graph along with error %v", err)
			}
			var re *graph.ResolveError
			if !errors.As(err, &re) {
				t.Fatalf("Resolve error = %v (%T), want *graph.ResolveError", err, err)
			}
			if len(re.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(re.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				p := re.Problems[i]
				if p.Kind != w.kind || !strings.HasPrefix(p.Message, w.msg) || !reflect.DeepEqual(p.Components, w.components) {
					t.Errorf("problem %d = {%v, %q, %v}\nwant       {%v, %q..., %v}", i, p.Kind, p.Message, p.Components, w.kind, w.msg, w.components)
				}
				if !errors.Is(err, w.kind) {
					t.Errorf("errors.Is(err, %v) = false", w.kind)
				}
				if !strings.Contains(err.Error(), p.Message) {
					t.Errorf("Error() = %q does not contain problem %q", err.Error(), p.Message)
				}
			}
		})
	}
}

type wantProblem struct {
	kind       error
	msg        string // the message, or its start
	components []string
}

func TestEdgesAndHardDependents(t *testing.T) {
	// db <-hard- api <-hard- web
	// db <-soft- report <-hard- mail
	// cache <-hard- api
	g, err := graph.Resolve(
		[]recipes.ComponentRef{root("web", "1.0.0"), root("mail", "1.0.0")},
		[]*recipes.Recipe{
			rec("web", "1.0.0", hard("api", "^1")),
			rec("api", "1.0.0", hard("db", ""), hard("cache", "")),
			rec("mail", "1.0.0", hard("report", "")),
			rec("report", "1.0.0", soft("db", ">=1.0.0")),
			rec("db", "1.0.0"), rec("cache", "1.0.0"),
		})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if got, want := g.Roots(), []string{"mail", "web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Roots() = %v, want %v", got, want)
	}
	wantDeps := []graph.Edge{
		{Dependent: "api", Dependency: "cache", Type: recipes.DependencyHard},
		{Dependent: "api", Dependency: "db", Type: recipes.DependencyHard},
	}
	if got := g.Dependencies("api"); !reflect.DeepEqual(got, wantDeps) {
		t.Errorf("Dependencies(api) = %v, want %v", got, wantDeps)
	}
	wantDependents := []graph.Edge{
		{Dependent: "api", Dependency: "db", Type: recipes.DependencyHard},
		{Dependent: "report", Dependency: "db", Type: recipes.DependencySoft, Range: ">=1.0.0"},
	}
	if got := g.Dependents("db"); !reflect.DeepEqual(got, wantDependents) {
		t.Errorf("Dependents(db) = %v, want %v", got, wantDependents)
	}
	for name, want := range map[string][]string{
		"db":     {"api", "web"}, // soft edge to report does not propagate
		"cache":  {"api", "web"},
		"api":    {"web"},
		"report": {"mail"},
		"web":    nil,
		"nobody": nil,
	} {
		if got := g.HardDependents(name); !reflect.DeepEqual(got, want) {
			t.Errorf("HardDependents(%s) = %v, want %v", name, got, want)
		}
	}
	if got := g.Dependencies("nobody"); got != nil {
		t.Errorf("Dependencies(nobody) = %v, want nil", got)
	}
	if _, ok := g.Recipe("nobody"); ok {
		t.Error("Recipe(nobody) found a recipe")
	}

	// Results are copies: changing them leaves the graph alone.
	g.Names()[0] = "mutated"
	g.Dependencies("api")[0].Dependency = "mutated"
	if g.Names()[0] == "mutated" || g.Dependencies("api")[0].Dependency == "mutated" {
		t.Error("Names()/Dependencies() share memory with the graph")
	}
}

func TestResolveNothing(t *testing.T) {
	// An empty deployment is valid: it removes everything.
	g, err := graph.Resolve(nil, []*recipes.Recipe{rec("a", "1.0.0")})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if g.Len() != 0 || len(g.Names()) != 0 || len(g.Components()) != 0 {
		t.Errorf("empty deployment resolved to %d components: %v", g.Len(), g.Names())
	}
}

func TestResolveIsDeterministic(t *testing.T) {
	roots, avail := generated(300)
	first, err := graph.Resolve(roots, avail)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	for i := 0; i < 5; i++ {
		slices.Reverse(avail)
		slices.Reverse(roots)
		g, err := graph.Resolve(roots, avail)
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		for _, n := range first.Names() {
			if !reflect.DeepEqual(g.Dependencies(n), first.Dependencies(n)) || !reflect.DeepEqual(g.Dependents(n), first.Dependents(n)) {
				t.Fatalf("the edges of %s differ between runs with the same input in another order", n)
			}
		}
		if !reflect.DeepEqual(layersOf(g), layersOf(first)) || !reflect.DeepEqual(g.Names(), first.Names()) {
			t.Fatal("the graph differs between runs with the same input in another order")
		}
	}
}

func TestResolve1000(t *testing.T) {
	roots, avail := generated(1000)
	g, err := graph.Resolve(roots, avail)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if g.Len() != 1000 {
		t.Fatalf("resolved %d components, want 1000", g.Len())
	}
	// Roots pin 1.1.0; every hard range is ">=1.0.0, <2.0.0", whose best is
	// 1.1.0; a component only soft dependents need ("" = any) gets 2.0.0.
	roots1 := map[string]bool{}
	for _, r := range roots {
		roots1[r.Name] = true
	}
	versions := map[string]int{}
	for _, r := range g.Components() {
		name := r.Metadata.Name
		want := "2.0.0"
		if roots1[name] {
			want = "1.1.0"
		}
		for _, e := range g.Dependents(name) {
			if e.Range != "" {
				want = "1.1.0"
			}
		}
		if r.Metadata.Version != want {
			t.Fatalf("%s resolved to %s, want %s", name, r.Metadata.Version, want)
		}
		versions[want]++
	}
	if versions["1.1.0"] == 0 || versions["2.0.0"] == 0 {
		t.Fatalf("picked versions %v: the generator should exercise both", versions)
	}
	if n := len(layersOf(g)); n < 2 {
		t.Fatalf("only %d layers for a deep random graph", n)
	}
	checkLayersRespectEdges(t, g)
}
