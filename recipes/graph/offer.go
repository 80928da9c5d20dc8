package graph

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/keystone-edge/keystone/recipes"
)

// candidate is one offered recipe with its version and dependency list parsed.
type candidate struct {
	rec  *recipes.Recipe
	name string
	ver  *semver.Version
	deps []dependency // in recipe order, one per dependency name
	bad  []*Problem   // malformed dependency entries; reported only if picked
}

// id is "name@version", the form every message uses.
func (c *candidate) id() string { return c.name + "@" + c.ver.String() }

// dependency is a recipe's dependency entry with its range parsed.
type dependency struct {
	name string
	raw  string              // the range as written; "" = any version
	rng  *semver.Constraints // nil = any version
	typ  recipes.DependencyType
}

// allows reports whether v satisfies the dependency's range.
func (d dependency) allows(v *semver.Version) bool { return d.rng == nil || d.rng.Check(v) }

// rangeText renders the range for messages.
func (d dependency) rangeText() string {
	if d.raw == "" {
		return "any version"
	}
	return d.raw
}

// offers indexes the recipes on offer: every version of every name, highest
// version first.
type offers map[string][]*candidate

// indexOffers parses the offered recipes. Malformed or ambiguous recipes
// are left out and returned as problems.
func indexOffers(available []*recipes.Recipe) (offers, []*Problem) {
	idx := offers{}
	ranges := map[string]*semver.Constraints{} // parsed once per distinct range
	var problems []*Problem
	for i, r := range available {
		if r == nil {
			problems = append(problems, invalid(nil, "recipe #%d on offer is nil", i))
			continue
		}
		name := r.Metadata.Name
		if name == "" {
			problems = append(problems, invalid(nil, "recipe #%d on offer (%s) has no name", i, sourceOf(r)))
			continue
		}
		v, err := semver.StrictNewVersion(r.Metadata.Version)
		if err != nil {
			problems = append(problems, invalid([]string{name},
				"%s: version %q is not semver 2.0 (%s)", name, r.Metadata.Version, sourceOf(r)))
			continue
		}
		c := &candidate{rec: r, name: name, ver: v}
		if dup := idx.find(name, v); dup != nil {
			if dup.rec != r && !sameBytes(dup.rec, r) {
				problems = append(problems, invalid([]string{name},
					"%s is offered by two different recipes (%s, %s)", c.id(), sourceOf(dup.rec), sourceOf(r)))
			}
			continue
		}
		c.deps, c.bad = parseDependencies(c, ranges)
		idx[name] = append(idx[name], c)
	}
	for _, cs := range idx {
		slices.SortFunc(cs, func(a, b *candidate) int { return b.ver.Compare(a.ver) })
	}
	return idx, problems
}

// find returns the offered candidate with exactly version v, or nil.
func (o offers) find(name string, v *semver.Version) *candidate {
	for _, c := range o[name] {
		if c.ver.String() == v.String() {
			return c
		}
	}
	return nil
}

// versions lists the offered versions of name, highest first, for messages.
func (o offers) versions(name string) string {
	vs := make([]string, len(o[name]))
	for i, c := range o[name] {
		vs[i] = c.ver.String()
	}
	return strings.Join(vs, ", ")
}

// best returns the highest offered version of name that satisfies every
// constraint, or nil when none does.
func (o offers) best(name string, cons []constraint) *candidate {
	for _, c := range o[name] {
		if satisfiesAll(c.ver, cons) {
			return c
		}
	}
	return nil
}

// parseDependencies parses c's dependency entries, reusing the ranges
// already parsed for other recipes. A malformed entry is reported and, where
// it still names a component, kept with the range treated as "any" so
// resolution can go on and find further problems.
func parseDependencies(c *candidate, ranges map[string]*semver.Constraints) ([]dependency, []*Problem) {
	var deps []dependency
	var bad []*Problem
	seen := map[string]bool{}
	for _, d := range c.rec.Dependencies {
		if d.Name == "" {
			bad = append(bad, invalid([]string{c.name}, "%s: a dependency has no name", c.id()))
			continue
		}
		if seen[d.Name] {
			bad = append(bad, invalid([]string{c.name, d.Name}, "%s lists dependency %s more than once", c.id(), d.Name))
			continue
		}
		seen[d.Name] = true
		dep := dependency{name: d.Name, raw: strings.TrimSpace(d.Version), typ: d.Type}
		switch dep.typ {
		case "":
			dep.typ = recipes.DependencyHard
		case recipes.DependencyHard, recipes.DependencySoft:
		default:
			bad = append(bad, invalid([]string{c.name, d.Name},
				"%s: dependency %s: type %q must be hard or soft", c.id(), d.Name, d.Type))
			dep.typ = recipes.DependencyHard
		}
		if rng, ok := ranges[dep.raw]; ok || dep.raw == "" {
			dep.rng = rng
		} else if rng, err := semver.NewConstraint(dep.raw); err != nil {
			bad = append(bad, invalid([]string{c.name, d.Name},
				"%s: dependency %s: invalid version range %q: %v", c.id(), d.Name, dep.raw, err))
		} else {
			ranges[dep.raw] = rng
			dep.rng = rng
		}
		deps = append(deps, dep)
	}
	return deps, bad
}

func invalid(components []string, format string, args ...any) *Problem {
	return &Problem{Kind: ErrInvalid, Components: components, Message: fmt.Sprintf(format, args...)}
}

func sourceOf(r *recipes.Recipe) string {
	if r.Source != "" {
		return r.Source
	}
	return "no file"
}

func sameBytes(a, b *recipes.Recipe) bool {
	return len(a.Raw) > 0 && bytes.Equal(a.Raw, b.Raw)
}
