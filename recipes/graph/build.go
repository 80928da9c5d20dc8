package graph

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/heimdalr/dag"
)

// build puts the picked components into a heimdalr/dag, one vertex per
// name (the vertex value is the name itself, so values are unique) and one
// edge from each dependency to its dependent, added dependencies first. The
// DAG refuses an edge that would close a loop; each refusal becomes a cycle
// problem. Layers are computed from the DAG's edges before it is dropped:
// the returned Graph holds only plain, immutable data.
func build(picks, pinned map[string]*candidate) (*Graph, []*Problem, error) {
	d := dag.NewDAG()
	names := slices.Sorted(maps.Keys(picks))
	for _, name := range names {
		if err := d.AddVertexByID(name, name); err != nil {
			return nil, nil, fmt.Errorf("add component %s: %w", name, err)
		}
	}

	g := &Graph{
		recipes:    make(map[string]*candidate, len(picks)),
		names:      names,
		deps:       map[string][]Edge{},
		dependents: map[string][]Edge{},
	}
	for _, name := range names {
		g.recipes[name] = picks[name]
		if pinned[name] != nil {
			g.roots = append(g.roots, name)
		}
	}
	needs := map[string][]string{} // accepted edges, dependent -> dependencies
	var cycles []*Problem
	seen := map[string]bool{}
	for _, name := range insertionOrder(names, picks) {
		for _, dep := range sortedDeps(picks[name], picks) {
			err := d.AddEdge(dep.name, name)
			var loop dag.EdgeLoopError
			var self dag.SrcDstEqualError
			switch {
			case err == nil:
			case errors.As(err, &loop) || errors.As(err, &self):
				p := cycleProblem(name, dep.name, needs)
				if !seen[p.Message] {
					seen[p.Message] = true
					cycles = append(cycles, p)
				}
				continue
			default:
				return nil, nil, fmt.Errorf("add dependency %s -> %s: %w", name, dep.name, err)
			}
			needs[name] = append(needs[name], dep.name)
			e := Edge{Dependent: name, Dependency: dep.name, Type: dep.typ, Range: dep.raw}
			g.deps[name] = append(g.deps[name], e)
			g.dependents[dep.name] = append(g.dependents[dep.name], e)
		}
	}
	for _, es := range g.dependents {
		slices.SortFunc(es, func(a, b Edge) int { return strings.Compare(a.Dependent, b.Dependent) })
	}
	if len(cycles) > 0 {
		return nil, cycles, nil
	}
	return g, nil, nil
}

// sortedDeps returns c's dependencies that were picked (a missing or
// conflicting one is reported by the settlement), sorted by name.
func sortedDeps(c *candidate, picks map[string]*candidate) []dependency {
	var deps []dependency
	for _, d := range c.deps {
		if picks[d.name] != nil {
			deps = append(deps, d)
		}
	}
	slices.SortFunc(deps, func(a, b dependency) int { return strings.Compare(a.name, b.name) })
	return deps
}

// insertionOrder orders the components dependencies first (depth-first
// post-order, names and dependencies sorted, an edge back into the current
// path skipped). The DAG copies a vertex's whole ancestor and descendant
// sets on every AddEdge; adding each component's edges after those of
// everything it needs keeps the dependent side empty, so building costs
// the size of the dependency closures rather than far more.
func insertionOrder(names []string, picks map[string]*candidate) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := make(map[string]int, len(names))
	order := make([]string, 0, len(names))
	var visit func(string)
	visit = func(name string) {
		state[name] = onPath
		for _, d := range sortedDeps(picks[name], picks) {
			if state[d.name] == unseen {
				visit(d.name)
			}
		}
		state[name] = done
		order = append(order, name)
	}
	for _, name := range names {
		if state[name] == unseen {
			visit(name)
		}
	}
	return order
}

// cycleProblem names the loop that the refused edge "dependent needs
// dependency" would close: the shortest path back from dependency to
// dependent through accepted edges, rotated to start at its smallest name.
func cycleProblem(dependent, dependency string, needs map[string][]string) *Problem {
	members := []string{dependent}
	if dependent != dependency {
		path := pathBetween(dependency, dependent, needs)
		members = append(members, path[:len(path)-1]...)
	}
	start := 0
	for i, m := range members {
		if m < members[start] {
			start = i
		}
	}
	members = slices.Concat(members[start:], members[:start])
	loop := append(slices.Clone(members), members[0])
	return &Problem{
		Kind:       ErrCycle,
		Components: members,
		Message:    "dependency cycle: " + strings.Join(loop, " -> "),
	}
}

// pathBetween returns the shortest path from -> … -> to along needs (both
// ends included; neighbours in sorted order, so the answer is stable). The
// DAG refused the edge because such a path exists.
func pathBetween(from, to string, needs map[string][]string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for i := 0; i < len(queue); i++ {
		n := queue[i]
		if n == to {
			var path []string
			for ; n != ""; n = prev[n] {
				path = append(path, n)
			}
			slices.Reverse(path)
			return path
		}
		for _, next := range needs[n] {
			if _, ok := prev[next]; !ok {
				prev[next] = n
				queue = append(queue, next)
			}
		}
	}
	return []string{from, to}
}
