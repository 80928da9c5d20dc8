package deploy

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor"
)

// Plan actions (PlanItem.Action).
const (
	ActionAdd         PlanAction = "add"         // not installed: install and start
	ActionUpdate      PlanAction = "update"      // another version: stop, install, start
	ActionReconfigure PlanAction = "reconfigure" // same version, different rendered recipe or config: restart
	ActionRemove      PlanAction = "remove"      // not in the deployment: stop and remove
	ActionUnchanged   PlanAction = "unchanged"   // left running as it is
	ActionRestart     PlanAction = "restart"     // unchanged, but restarted (a hard dependency is replaced, or it had failed)
)

// computePlan says what a deployment changes, component by component: the
// difference between the current set and the desired one, both rendered as
// the supervisor runs them. states is what the supervisor reports now (nil
// means unknown); an unchanged component that had failed or was stopped by
// hand is started again by a deployment. It is a pure function; items are
// sorted by component name.
func computePlan(current, desired map[string]*supervisor.Component, states map[string]supervisor.Status) []PlanItem {
	byName := map[string]*PlanItem{}
	for name, want := range desired {
		have, ok := current[name]
		it := &PlanItem{Component: name, ToVersion: want.Version()}
		switch {
		case !ok:
			it.Action, it.Reason = ActionAdd, "not installed"
		case have.Version() != want.Version():
			it.Action, it.FromVersion = ActionUpdate, have.Version()
			it.Reason = fmt.Sprintf("version %s -> %s", have.Version(), want.Version())
		case !reflect.DeepEqual(have, want):
			it.Action, it.FromVersion = ActionReconfigure, have.Version()
			it.Reason = "changed: " + strings.Join(changedFields(have, want), ", ")
		default:
			it.Action, it.FromVersion = ActionUnchanged, have.Version()
		}
		byName[name] = it
	}
	for name, have := range current {
		if _, ok := desired[name]; !ok {
			byName[name] = &PlanItem{Component: name, Action: ActionRemove, FromVersion: have.Version(),
				Reason: "not in the deployment"}
		}
	}
	restartDependents(byName, desired)
	for name, it := range byName {
		st, ok := states[name]
		if it.Action != ActionUnchanged || !ok {
			continue
		}
		if st.Failed() || st.State == supervisor.StateStopped {
			it.Action, it.Reason = ActionRestart, fmt.Sprintf("%s: started again", st.State)
		}
	}
	out := make([]PlanItem, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, *byName[name])
	}
	return out
}

// restartDependents marks the unchanged hard dependents of every replaced
// component, transitively, as restarting: they stop while it is down and
// start again after it.
func restartDependents(byName map[string]*PlanItem, desired map[string]*supervisor.Component) {
	dependents := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(desired)) {
		for _, d := range desired[name].Recipe.Dependencies {
			if d.Type != recipes.DependencySoft {
				dependents[d.Name] = append(dependents[d.Name], name)
			}
		}
	}
	var queue []string
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		if a := byName[name].Action; a == ActionUpdate || a == ActionReconfigure {
			queue = append(queue, name)
		}
	}
	for len(queue) > 0 {
		dep := queue[0]
		queue = queue[1:]
		for _, n := range dependents[dep] {
			it := byName[n]
			if it.Action != ActionUnchanged {
				continue
			}
			it.Action = ActionRestart
			it.Reason = fmt.Sprintf("hard dependency %s restarts", dep)
			queue = append(queue, n)
		}
	}
}

// changedFields names what differs between two renderings of the same
// component version, as recipe field paths ("lifecycle.run.args") plus
// "secrets" (never their values).
func changedFields(a, b *supervisor.Component) []string {
	var out []string
	diffValue("", reflect.ValueOf(*a.Recipe), reflect.ValueOf(*b.Recipe), 3, &out)
	if !reflect.DeepEqual(a.Secrets, b.Secrets) {
		out = append(out, "secrets")
	}
	if !reflect.DeepEqual(a.Config, b.Config) {
		out = append(out, "config")
	}
	if a.WorkDir != b.WorkDir || a.VersionDir != b.VersionDir {
		out = append(out, "folders")
	}
	if len(out) == 0 {
		out = append(out, "rendered recipe")
	}
	return out
}

// diffValue appends the paths of the fields of a and b that differ,
// descending into tables (structs with toml tags) up to depth levels.
func diffValue(p string, a, b reflect.Value, depth int, out *[]string) {
	if reflect.DeepEqual(a.Interface(), b.Interface()) {
		return
	}
	if a.Kind() == reflect.Pointer {
		if a.IsNil() || b.IsNil() || depth == 0 {
			*out = append(*out, p)
			return
		}
		a, b = a.Elem(), b.Elem()
	}
	if a.Kind() != reflect.Struct || depth == 0 || !hasTOMLFields(a.Type()) {
		*out = append(*out, p)
		return
	}
	t := a.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		q := tag
		if p != "" {
			q = p + "." + tag
		}
		diffValue(q, a.Field(i), b.Field(i), depth-1, out)
	}
}

func hasTOMLFields(t reflect.Type) bool {
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			return true
		}
	}
	return false
}

// summarize counts a plan's actions: "1 update, 1 restart, 2 unchanged".
func summarize(items []PlanItem) string {
	counts := map[PlanAction]int{}
	for _, it := range items {
		counts[it.Action]++
	}
	var parts []string
	for _, a := range []PlanAction{ActionAdd, ActionUpdate, ActionReconfigure, ActionRemove, ActionRestart, ActionUnchanged} {
		if counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
		}
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}
