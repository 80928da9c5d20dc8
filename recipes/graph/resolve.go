package graph

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/keystone-edge/keystone/recipes"
)

// Resolve picks one version of every component the roots need and builds
// their dependency graph.
//
// A root gets exactly the version it pins. A dependency gets the highest
// offered version that satisfies every range pointing at it from the
// versions picked for its dependents (ranges use Masterminds/semver syntax,
// e.g. ">=1.0.0, <2.0.0"; "" means any version, prereleases included; a
// non-empty range matches a prerelease only if it names one). available may
// hold several versions per name; recipes nobody needs are ignored.
//
// Every problem found is returned at once in a *ResolveError: a missing
// dependency, a version conflict (naming both sides), a cycle (naming its
// members in order) and malformed input. Resolve never returns a partial
// Graph.
func Resolve(roots []recipes.ComponentRef, available []*recipes.Recipe) (*Graph, error) {
	idx, problems := indexOffers(available)
	pinned, rootProblems := pinRoots(roots, idx)
	problems = append(problems, rootProblems...)

	s := settle(idx, pinned)
	problems = append(problems, s.problems(idx, pinned)...)

	g, cycles, err := build(s.picks, pinned)
	if err != nil {
		return nil, fmt.Errorf("resolve dependencies: %w", err)
	}
	problems = append(problems, cycles...)

	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b *Problem) int {
			return cmp.Or(cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)), strings.Compare(a.Message, b.Message))
		})
		return nil, &ResolveError{Problems: problems}
	}
	return g, nil
}

// pinRoots finds the offered recipe for each root's exact version.
func pinRoots(roots []recipes.ComponentRef, idx offers) (map[string]*candidate, []*Problem) {
	pinned := map[string]*candidate{}
	listed := map[string]bool{}
	var problems []*Problem
	for _, ref := range roots {
		if ref.Name == "" {
			problems = append(problems, invalid(nil, "the deployment lists a component with no name"))
			continue
		}
		if listed[ref.Name] {
			problems = append(problems, invalid([]string{ref.Name}, "the deployment lists %s more than once", ref.Name))
			continue
		}
		listed[ref.Name] = true
		v, err := semver.StrictNewVersion(ref.Version)
		if err != nil {
			problems = append(problems, invalid([]string{ref.Name},
				"the deployment pins %s to %q, which is not an exact semver 2.0 version", ref.Name, ref.Version))
			continue
		}
		c := idx.find(ref.Name, v)
		if c == nil {
			msg := fmt.Sprintf("the deployment asks for %s@%s, which is not on offer", ref.Name, v)
			if len(idx[ref.Name]) > 0 {
				msg += " (offered: " + idx.versions(ref.Name) + ")"
			}
			problems = append(problems, &Problem{Kind: ErrMissing, Components: []string{ref.Name}, Message: msg})
			continue
		}
		pinned[ref.Name] = c
	}
	return pinned, problems
}

// constraint is one range pointing at a component from a picked dependent.
type constraint struct {
	from *candidate
	dep  dependency
}

func satisfiesAll(v *semver.Version, cons []constraint) bool {
	for _, c := range cons {
		if !c.dep.allows(v) {
			return false
		}
	}
	return true
}

// settlement is the outcome of version selection.
type settlement struct {
	picks     map[string]*candidate   // every component reached from the roots
	cons      map[string][]constraint // ranges pointing at each needed name
	unsettled []string                // names still changing when the round bound hit
}

// settle picks versions by iterating to a fixed point: walk from the roots
// through the current picks collecting ranges, then re-pick every
// dependency as the highest version satisfying all ranges that point at it.
// A newly reached name is picked tentatively during the walk, so most
// graphs settle in one or two rounds. A name no offered version satisfies
// is blocked (left unpicked and not walked into) until its ranges change.
func settle(idx offers, pinned map[string]*candidate) settlement {
	picks := maps.Clone(pinned)
	blocked := map[string]bool{}
	// Every round that does not settle changes at least one pick; the bound
	// only stops pathological ranges that flip versions back and forth.
	rounds := 2*len(idx) + 4
	flipping := map[string]bool{} // names changed in the second half of the rounds
	for n := 0; ; n++ {
		cons := walk(idx, pinned, picks, blocked)
		var changed []string
		for _, name := range slices.Sorted(maps.Keys(cons)) {
			if pinned[name] != nil {
				continue
			}
			best := idx.best(name, cons[name])
			blocked[name] = best == nil
			if best != picks[name] {
				changed = append(changed, name)
				if best == nil {
					delete(picks, name)
				} else {
					picks[name] = best
				}
			}
		}
		if len(changed) == 0 {
			return settlement{picks: picks, cons: cons}
		}
		if n >= rounds/2 {
			for _, name := range changed {
				flipping[name] = true
			}
		}
		if n == rounds {
			return settlement{picks: picks, cons: cons, unsettled: slices.Sorted(maps.Keys(flipping))}
		}
	}
}

// walk visits every component reachable from the roots through picks
// (breadth first, names sorted), records the ranges each visited version
// puts on its dependencies, picks unvisited names tentatively, and drops
// picks no longer reached.
func walk(idx offers, pinned, picks map[string]*candidate, blocked map[string]bool) map[string][]constraint {
	cons := map[string][]constraint{}
	queue := slices.Sorted(maps.Keys(pinned))
	reached := map[string]bool{}
	for _, name := range queue {
		reached[name] = true
	}
	for i := 0; i < len(queue); i++ {
		from := picks[queue[i]]
		for _, d := range from.deps {
			cons[d.name] = append(cons[d.name], constraint{from: from, dep: d})
			if reached[d.name] {
				continue
			}
			if picks[d.name] == nil && !blocked[d.name] {
				if c := idx.best(d.name, cons[d.name]); c != nil {
					picks[d.name] = c
				}
			}
			if picks[d.name] == nil {
				continue
			}
			reached[d.name] = true
			queue = append(queue, d.name)
		}
	}
	for name := range picks {
		if !reached[name] {
			delete(picks, name)
		}
	}
	return cons
}

// problems reports what the settled picks leave unsatisfied.
func (s settlement) problems(idx offers, pinned map[string]*candidate) []*Problem {
	var problems []*Problem
	for _, name := range slices.Sorted(maps.Keys(s.picks)) {
		problems = append(problems, s.picks[name].bad...)
	}
	for _, name := range slices.Sorted(maps.Keys(s.cons)) {
		cons := s.cons[name]
		switch {
		case pinned[name] != nil:
			root := pinned[name]
			for _, c := range cons {
				if !c.dep.allows(root.ver) {
					problems = append(problems, &Problem{
						Kind:       ErrConflict,
						Components: []string{c.from.name, name},
						Message: fmt.Sprintf("version conflict: %s needs %s (%s), but the deployment pins %s",
							c.from.id(), name, c.dep.rangeText(), root.id()),
					})
				}
			}
		case len(idx[name]) == 0:
			for _, c := range cons {
				problems = append(problems, &Problem{
					Kind:       ErrMissing,
					Components: []string{c.from.name, name},
					Message: fmt.Sprintf("%s needs %s (%s), which is not in the deployment",
						c.from.name, name, c.dep.rangeText()),
				})
			}
		case s.picks[name] == nil:
			problems = append(problems, conflictOn(idx, name, cons))
		}
	}
	if len(s.unsettled) > 0 {
		problems = append(problems, &Problem{
			Kind:       ErrConflict,
			Components: s.unsettled,
			Message: fmt.Sprintf("version conflict: the versions of %s do not settle (their ranges exclude each other's picks)",
				strings.Join(s.unsettled, ", ")),
		})
	}
	return problems
}

// conflictOn describes the ranges on name that no offered version meets.
func conflictOn(idx offers, name string, cons []constraint) *Problem {
	sorted := slices.Clone(cons)
	slices.SortFunc(sorted, func(a, b constraint) int { return strings.Compare(a.from.name, b.from.name) })
	components := []string{name}
	needs := make([]string, len(sorted))
	for i, c := range sorted {
		components = append(components, c.from.name)
		needs[i] = c.from.id() + " needs " + c.dep.rangeText()
	}
	return &Problem{
		Kind:       ErrConflict,
		Components: components,
		Message: fmt.Sprintf("version conflict on %s: %s; offered: %s",
			name, strings.Join(needs, ", "), idx.versions(name)),
	}
}
