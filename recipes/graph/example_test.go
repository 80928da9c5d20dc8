package graph_test

import (
	"fmt"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/recipes/graph"
)

func ExampleResolve() {
	dep := func(name, rng string, typ recipes.DependencyType) recipes.Dependency {
		return recipes.Dependency{Name: name, Version: rng, Type: typ}
	}
	recipe := func(name, version string, deps ...recipes.Dependency) *recipes.Recipe {
		return &recipes.Recipe{Metadata: recipes.Metadata{Name: name, Version: version}, Dependencies: deps}
	}
	available := []*recipes.Recipe{
		recipe("com.example.pos", "1.0.0",
			dep("com.example.db", ">=1.0.0, <2.0.0", recipes.DependencyHard),
			dep("com.example.mqtt", "", recipes.DependencySoft)),
		recipe("com.example.report", "2.1.0", dep("com.example.db", "^1.2", recipes.DependencyHard)),
		recipe("com.example.db", "1.1.0"),
		recipe("com.example.db", "1.4.2"),
		recipe("com.example.db", "2.0.0"),
		recipe("com.example.mqtt", "0.9.0"),
	}
	roots := []recipes.ComponentRef{
		{Name: "com.example.pos", Version: "1.0.0"},
		{Name: "com.example.report", Version: "2.1.0"},
	}

	g, err := graph.Resolve(roots, available)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range g.Names() {
		r, _ := g.Recipe(name)
		fmt.Println(name, r.Metadata.Version)
		for _, e := range g.Dependencies(name) {
			fmt.Printf("  needs %s (%s)\n", e.Dependency, e.Type)
		}
	}
	fmt.Println("stop with db:", g.HardDependents("com.example.db"))
	// Output:
	// com.example.db 1.4.2
	// com.example.mqtt 0.9.0
	// com.example.pos 1.0.0
	//   needs com.example.db (hard)
	//   needs com.example.mqtt (soft)
	// com.example.report 2.1.0
	//   needs com.example.db (hard)
	// stop with db: [com.example.pos com.example.report]
}

func ExampleResolve_cycle() {
	recipe := func(name, needs string) *recipes.Recipe {
		return &recipes.Recipe{
			Metadata:     recipes.Metadata{Name: name, Version: "1.0.0"},
			Dependencies: []recipes.Dependency{{Name: needs}},
		}
	}
	_, err := graph.Resolve(
		[]recipes.ComponentRef{{Name: "b", Version: "1.0.0"}},
		[]*recipes.Recipe{recipe("a", "b"), recipe("b", "c"), recipe("c", "a")})
	fmt.Println(err)
	// Output:
	// dependency cycle: a -> b -> c -> a
}
