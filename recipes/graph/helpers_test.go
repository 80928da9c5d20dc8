package graph_test

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/recipes/graph"
)

// layersOf groups g's components by depth, from its edges alone: layer 0
// needs nothing, each later layer needs only earlier ones; sorted within a
// layer. Tests compare it to the layering they expect, which checks every
// edge Resolve kept at once.
func layersOf(g *graph.Graph) [][]string {
	placed := map[string]bool{}
	var layers [][]string
	for len(placed) < g.Len() {
		var layer []string
		for _, n := range g.Names() {
			if placed[n] {
				continue
			}
			ready := true
			for _, e := range g.Dependencies(n) {
				ready = ready && placed[e.Dependency]
			}
			if ready {
				layer = append(layer, n)
			}
		}
		if len(layer) == 0 {
			return append(layers, []string{"cycle"})
		}
		for _, n := range layer {
			placed[n] = true
		}
		slices.Sort(layer)
		layers = append(layers, layer)
	}
	return layers
}

// rec builds an offered recipe with the given dependencies.
func rec(name, version string, deps ...recipes.Dependency) *recipes.Recipe {
	return &recipes.Recipe{
		Format:       1,
		Metadata:     recipes.Metadata{Name: name, Version: version, Kind: recipes.KindProcess},
		Dependencies: deps,
		Source:       name + "-" + version + ".recipe.toml",
	}
}

// hard is a hard dependency on name; rng "" means any version.
func hard(name, rng string) recipes.Dependency {
	return recipes.Dependency{Name: name, Version: rng, Type: recipes.DependencyHard}
}

// soft is a soft dependency on name; rng "" means any version.
func soft(name, rng string) recipes.Dependency {
	return recipes.Dependency{Name: name, Version: rng, Type: recipes.DependencySoft}
}

// root pins name@version in a manifest.
func root(name, version string) recipes.ComponentRef {
	return recipes.ComponentRef{Name: name, Version: version}
}

// generated returns n components in a random DAG (fixed seed): component i
// needs one of the 50 before it and up to two more anywhere before it, with
// ranges, and three versions of each are on offer. The roots are the
// components nothing needs, pinned to 1.1.0.
func generated(n int) ([]recipes.ComponentRef, []*recipes.Recipe) {
	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(n)
	name := func(i int) string { return fmt.Sprintf("com.bench.c%04d", perm[i]) }
	needed := make([]bool, n)
	var available []*recipes.Recipe
	for i := 0; i < n; i++ {
		var deps []recipes.Dependency
		picked := map[int]bool{}
		if i > 0 {
			lo := max(0, i-50)
			picked[lo+rng.IntN(i-lo)] = true
			for k := rng.IntN(3); k > 0; k-- {
				picked[rng.IntN(i)] = true
			}
		}
		for j := range picked {
			needed[j] = true
			if rng.IntN(4) == 0 {
				deps = append(deps, soft(name(j), ""))
			} else {
				deps = append(deps, hard(name(j), ">=1.0.0, <2.0.0"))
			}
		}
		for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
			available = append(available, rec(name(i), v, deps...))
		}
	}
	var roots []recipes.ComponentRef
	for i := 0; i < n; i++ {
		if !needed[i] {
			roots = append(roots, root(name(i), "1.1.0"))
		}
	}
	return roots, available
}
