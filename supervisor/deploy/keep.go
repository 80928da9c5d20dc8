package deploy

import (
	"maps"
	"slices"
)

// versionsToKeep says which versions of each component stay on disk after
// a commit: history[0] is the new current set (name to version) and the
// rest are earlier successful deployments, newest first. A component of the
// current set keeps its current version and the most recent others up to
// keep versions in all (artifacts.keep_versions, the current one included);
// a component no longer deployed keeps up to keep-1 of its latest versions,
// its current slot being empty. keep < 1 counts as 1. It is pure; versions
// come newest first.
func versionsToKeep(history []map[string]string, keep int) map[string][]string {
	if keep < 1 {
		keep = 1
	}
	out := map[string][]string{}
	limit := func(name string) int {
		if len(history) > 0 {
			if _, ok := history[0][name]; ok {
				return keep
			}
		}
		return keep - 1
	}
	for _, set := range history {
		for _, name := range slices.Sorted(maps.Keys(set)) {
			v := set[name]
			if slices.Contains(out[name], v) || len(out[name]) >= limit(name) {
				continue
			}
			out[name] = append(out[name], v)
		}
	}
	return out
}
