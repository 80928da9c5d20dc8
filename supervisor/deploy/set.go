package deploy

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/recipes/graph"
	"github.com/keystone-edge/keystone/supervisor"
)

// set is one deployment's resolved component set: the recipes the graph
// picked, in the text form the store keeps, and each rendered into the
// component the supervisor runs. A set is immutable once built.
type set struct {
	id           string
	manifest     *recipes.Manifest // ID filled in
	manifestText string            // as recorded
	recipes      map[string]*recipes.Recipe
	recipeText   map[string]string // recipes.Marshal of each, the store's form
	// hardDependents lists, for each component others need, every
	// component that needs it through hard dependencies, directly or
	// not. The set keeps this much of the graph: the graph itself holds
	// the recipes as they were offered, a copy of each for as long as
	// the set is current.
	hardDependents map[string][]string
	comps          map[string]*supervisor.Component
}

// emptySet is what runs before the first deployment.
func emptySet() *set {
	return &set{recipes: map[string]*recipes.Recipe{}, recipeText: map[string]string{},
		hardDependents: map[string][]string{}, comps: map[string]*supervisor.Component{}}
}

// names returns the component names, sorted.
func (s *set) names() []string { return slices.Sorted(maps.Keys(s.comps)) }

// components returns the rendered components, sorted by name.
func (s *set) components() []*supervisor.Component { return byName(s.comps) }

// recipeList returns the unrendered recipes, sorted by name.
func (s *set) recipeList() []*recipes.Recipe { return byName(s.recipes) }

func byName[V any](m map[string]V) []V {
	out := make([]V, 0, len(m))
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[n])
	}
	return out
}

// healthTimeout is the manifest's health_timeout (the default for the
// empty set).
func (s *set) healthTimeout() time.Duration {
	if s.manifest == nil || s.manifest.Deployment.HealthTimeout.Duration <= 0 {
		return recipes.DefaultDeploymentHealthTimeout
	}
	return s.manifest.Deployment.HealthTimeout.Duration
}

// policy is the manifest's failure_policy.
func (s *set) policy() recipes.FailurePolicy {
	if s.manifest == nil || s.manifest.Deployment.FailurePolicy == "" {
		return recipes.DefaultFailurePolicy
	}
	return s.manifest.Deployment.FailurePolicy
}

// describe lists the set as "a@1.0.0, b@2.0.0".
func (s *set) describe() string {
	if len(s.comps) == 0 {
		return "no components"
	}
	parts := make([]string, 0, len(s.comps))
	for _, n := range s.names() {
		parts = append(parts, n+"@"+s.comps[n].Version())
	}
	return strings.Join(parts, ", ")
}

// buildSet resolves the graph of m over available and renders every picked
// recipe. Each goes through its text form first (Marshal, then
// ParseRecipe), so that the same set rebuilt from the store later is
// identical and the supervisor sees no change. labels names each recipe in
// problems (the path the manifest used; "<name>.recipe.toml" when none).
func (e *Engine) buildSet(id string, m *recipes.Manifest, manifestText string, available []*recipes.Recipe,
	labels map[string]string, check admission) (*set, []Problem) {
	g, err := graph.Resolve(m.Components, available)
	if err != nil {
		return nil, graphProblems(err)
	}
	m.Deployment.ID = id
	s := emptySet()
	s.id, s.manifest, s.manifestText = id, m, manifestText
	for _, name := range g.Names() {
		if d := g.HardDependents(name); len(d) > 0 {
			s.hardDependents[name] = d
		}
	}
	overrides, listed := map[string]map[string]any{}, map[string]int{}
	for i, ref := range m.Components {
		overrides[ref.Name], listed[ref.Name] = ref.Config, i
	}
	var probs []Problem
	for _, picked := range g.Components() {
		name := picked.Metadata.Name
		label := cmp.Or(labels[name], name+recipeSuffix)
		text, err := picked.Marshal()
		if err != nil {
			probs = append(probs, invalid("%s: %v", label, err))
			continue
		}
		r, err := recipes.ParseRecipe(label, text)
		if err != nil {
			probs = append(probs, listProblems(err, "", label)...)
			continue
		}
		if i, ok := listed[name]; ok {
			// The manifest's overrides, checked with the manifest's file:line.
			if err := m.CheckConfig(i, r); err != nil {
				probs = append(probs, listProblems(err, "", m.Source)...)
				continue
			}
		}
		comp, ps := e.render(r, overrides[name], label, check)
		if len(ps) > 0 {
			probs = append(probs, ps...)
			continue
		}
		// The set keeps the text once, as recipeText; Raw, the same bytes,
		// is read only to tell offers apart while resolving, which is done.
		r.Raw = nil
		s.recipes[name] = r
		s.recipeText[name] = string(text)
		s.comps[name] = comp
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return s, nil
}

// rebuildSet rebuilds a recorded deployment's set from the store's text.
func (e *Engine) rebuildSet(id, manifestText string, recipeText map[string]string, check admission) (*set, error) {
	m, err := recipes.ParseManifest("deployment "+id, []byte(manifestText))
	if err != nil {
		return nil, fmt.Errorf("rebuild deployment %s: manifest: %w", id, err)
	}
	available := make([]*recipes.Recipe, 0, len(recipeText))
	for _, name := range slices.Sorted(maps.Keys(recipeText)) {
		r, err := recipes.ParseRecipe(name+recipeSuffix, []byte(recipeText[name]))
		if err != nil {
			return nil, fmt.Errorf("rebuild deployment %s: recipe %s: %w", id, name, err)
		}
		available = append(available, r)
	}
	s, probs := e.buildSet(id, m, manifestText, available, nil, check)
	if len(probs) > 0 {
		return nil, fmt.Errorf("rebuild deployment %s: %w", id, &ValidationError{Problems: probs})
	}
	return s, nil
}

// graphProblems turns a resolution error into problems.
func graphProblems(err error) []Problem {
	var re *graph.ResolveError
	if errors.As(err, &re) {
		out := make([]Problem, 0, len(re.Problems))
		for _, p := range re.Problems {
			out = append(out, invalid("dependencies: %s", p.Message))
		}
		return out
	}
	return []Problem{invalid("dependencies: %v", err)}
}

// listProblems turns a parser's ErrorList into problems, naming the file
// by label when it was read from the staging folder dir. Messages name
// staged files too (a missing import, an import cycle); they lose the
// staging folder's path, which is the device's business, not the sender's.
func listProblems(err error, dir, label string) []Problem {
	var list recipes.ErrorList
	if !errors.As(err, &list) {
		return []Problem{invalid("%s", unstaged(fmt.Sprintf("%s: %v", label, err), dir))}
	}
	out := make([]Problem, 0, len(list))
	for _, fe := range list {
		c := *fe
		c.File = relabel(c.File, dir, label)
		c.Message = unstaged(c.Message, dir)
		out = append(out, invalid("%s", c.Error()))
	}
	return out
}

// unstaged drops the staging folder dir from paths in msg.
func unstaged(msg, dir string) string {
	if dir == "" {
		return msg
	}
	return strings.ReplaceAll(msg, dir+"/", "")
}

// relabel shows a staged file by the path the request used.
func relabel(file, dir, label string) string {
	switch {
	case file == "":
		return label
	case dir != "" && strings.HasPrefix(file, dir+"/"):
		return strings.TrimPrefix(file, dir+"/")
	}
	return file
}
