package deploy

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/store"
)

// historyDepth bounds how many earlier deployments a commit looks at to
// decide which versions to keep.
const historyDepth = 20

// StepCleanup names the event (not a checkpoint) published once old
// versions and artifacts have been let go after a commit.
const StepCleanup = "cleanup"

// collect runs after a commit: version folders no longer kept are removed
// and the artifact cache is shrunk, keeping the current set's versions and
// up to keep_versions of each component's (see versionsToKeep). Nothing
// here fails the deployment; problems are logged. A "cleanup" event says
// when it is over.
func (e *Engine) collect(ctx context.Context, cur *set) {
	removed := 0
	defer func() { e.publish(cur.id, StepCleanup, "done", fmt.Sprintf("%d old versions removed", removed)) }()
	list, err := e.cfg.Store.ListDeployments(ctx, historyDepth)
	if err != nil {
		e.log.Error("version cleanup: list deployments", "err", err)
		return
	}
	sets := []map[string]*recipes.Recipe{cur.recipes} // newest first
	seen := map[string]bool{}
	for _, d := range list {
		if d.ID != cur.id && d.Status == store.DeploymentSucceeded {
			seen[d.ID] = true
			sets = append(sets, e.recipesOf(d))
		}
	}
	maps.DeleteFunc(e.versions, func(id string, _ map[string]*recipes.Recipe) bool { return !seen[id] })
	var history []map[string]string
	known := map[string]*recipes.Recipe{}
	for _, rs := range sets {
		versions := map[string]string{}
		for name, r := range rs {
			versions[name] = r.Metadata.Version
			known[r.Metadata.Name+"@"+r.Metadata.Version] = r
		}
		history = append(history, versions)
	}

	keep := versionsToKeep(history, e.cfg.KeepVersions)
	var keepRecipes []*recipes.Recipe
	for _, name := range slices.Sorted(maps.Keys(keep)) {
		for _, v := range keep[name] {
			if r, ok := known[name+"@"+v]; ok {
				keepRecipes = append(keepRecipes, r)
			}
		}
	}
	if e.cfg.ComponentsDir != "" {
		removed = e.removeVersions(keep)
	}
	res, err := e.cfg.Fetcher.GC(ctx, keepRecipes)
	if err != nil {
		e.log.Error("artifact cache GC", "err", err)
		return
	}
	if len(res.Removed) > 0 || res.OverLimit {
		e.log.Info("artifact cache GC", "removed", len(res.Removed), "freed_bytes", res.Freed, "size_bytes", res.Size, "over_limit", res.OverLimit)
	}
}

// removeVersions deletes every placed version folder not in keep and
// says how many it removed.
func (e *Engine) removeVersions(keep map[string][]string) (removed int) {
	names, err := os.ReadDir(e.cfg.ComponentsDir)
	if err != nil {
		if !os.IsNotExist(err) {
			e.log.Error("version cleanup", "err", err)
		}
		return 0
	}
	for _, n := range names {
		if !n.IsDir() || strings.HasPrefix(n.Name(), ".") {
			continue
		}
		versions, err := os.ReadDir(filepath.Join(e.cfg.ComponentsDir, n.Name()))
		if err != nil {
			e.log.Error("version cleanup", "component", n.Name(), "err", err)
			continue
		}
		for _, v := range versions {
			if !v.IsDir() || strings.HasPrefix(v.Name(), ".") || slices.Contains(keep[n.Name()], v.Name()) {
				continue
			}
			if err := e.cfg.Fetcher.RemoveVersion(n.Name(), v.Name()); err != nil {
				e.log.Error("version cleanup", "component", n.Name(), "version", v.Name(), "err", err)
				continue
			}
			removed++
			e.log.Info("removed old version", "component", n.Name(), "version", v.Name())
		}
	}
	return removed
}

// recipesOf parses a recorded deployment's recipes, once per deployment.
func (e *Engine) recipesOf(d store.Deployment) map[string]*recipes.Recipe {
	if rs, ok := e.versions[d.ID]; ok {
		return rs
	}
	rs := map[string]*recipes.Recipe{}
	for name, text := range d.Recipes {
		r, err := recipes.ParseRecipe(name+recipeSuffix, []byte(text))
		if err != nil {
			e.log.Error("version cleanup: recorded recipe", "deployment", d.ID, "component", name, "err", err)
			continue
		}
		rs[name] = r
	}
	e.versions[d.ID] = rs
	return rs
}
