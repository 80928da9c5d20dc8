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
	for i, layer := range g.Layers() {
		fmt.Println("start", i, layer)
	}
	db, _ := g.Recipe("com.example.db")
	fmt.Println("db version:", db.Metadata.Version)
	fmt.Println("stop:", g.StopOrder())
	fmt.Println("stop with db:", g.HardDependents("com.example.db"))
	// Output:
	// start 0 [com.example.db com.example.mqtt]
	// start 1 [com.example.pos com.example.report]
	// db version: 1.4.2
	// stop: [com.example.report com.example.pos com.example.mqtt com.example.db]
	// stop with db: [com.example.report com.example.pos]
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
