package graph

import (
	"slices"

	"github.com/keystone-edge/keystone/recipes"
)

// Graph is a resolved set of components: one version of each and the
// dependency edges between them.
//
// A Graph is immutable once Resolve returns it and safe for concurrent use;
// every method returns a fresh slice the caller may keep or change.
type Graph struct {
	recipes    map[string]*candidate
	names      []string          // sorted
	roots      []string          // sorted
	deps       map[string][]Edge // by dependent, sorted by dependency
	dependents map[string][]Edge // by dependency, sorted by dependent
}

// Edge is one dependency: Dependent needs Dependency.
type Edge struct {
	Dependent  string
	Dependency string
	// Type is recipes.DependencyHard or recipes.DependencySoft, never "".
	Type recipes.DependencyType
	// Range is the version range as the dependent's recipe wrote it; "" is
	// any version.
	Range string
}

// Len returns the number of components.
func (g *Graph) Len() int { return len(g.names) }

// Names returns every component's name, sorted.
func (g *Graph) Names() []string { return slices.Clone(g.names) }

// Roots returns the names the deployment listed, sorted; the other
// components are there only as dependencies.
func (g *Graph) Roots() []string { return slices.Clone(g.roots) }

// Components returns the picked recipe of every component, sorted by name.
func (g *Graph) Components() []*recipes.Recipe {
	out := make([]*recipes.Recipe, len(g.names))
	for i, name := range g.names {
		out[i] = g.recipes[name].rec
	}
	return out
}

// Recipe returns the picked recipe of name, or false when name is not in
// the graph.
func (g *Graph) Recipe(name string) (*recipes.Recipe, bool) {
	c, ok := g.recipes[name]
	if !ok {
		return nil, false
	}
	return c.rec, true
}

// Dependencies returns the edges from name to what it needs, sorted by
// dependency name; nil when name needs nothing or is not in the graph.
func (g *Graph) Dependencies(name string) []Edge { return slices.Clone(g.deps[name]) }

// Dependents returns the edges from the components that need name, sorted
// by dependent name; nil when nothing needs name or it is not in the graph.
func (g *Graph) Dependents(name string) []Edge { return slices.Clone(g.dependents[name]) }

// HardDependents returns every component that must stop when name leaves
// RUNNING: its hard dependents, theirs, and so on (a soft edge does not
// propagate), sorted by name; name itself is not included.
func (g *Graph) HardDependents(name string) []string {
	found := map[string]bool{}
	queue := []string{name}
	for i := 0; i < len(queue); i++ {
		for _, e := range g.dependents[queue[i]] {
			if e.Type == recipes.DependencyHard && !found[e.Dependent] {
				found[e.Dependent] = true
				queue = append(queue, e.Dependent)
			}
		}
	}
	var out []string
	for n := range found {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
