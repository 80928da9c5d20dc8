package recipes

import (
	"cmp"
	"fmt"
	"slices"
)

// EffectiveConfig merges a component's configuration layers: the recipe's
// config.defaults, then the device's config from agent.toml, then the
// deployment's overrides. Tables merge key by key, at any depth; any other
// value (a string, a number, an array) from a later layer replaces the
// earlier one. The inputs are not modified and the result shares nothing
// with them. Nil layers are skipped; the result is never nil.
func EffectiveConfig(defaults, device, deployment map[string]any) map[string]any {
	out := map[string]any{}
	for _, layer := range []map[string]any{defaults, device, deployment} {
		mergeInto(out, layer)
	}
	return out
}

// mergeInto lays over on top of dst, which the caller owns through and
// through: tables merge recursively, everything else in over wins and is
// copied, so dst shares nothing with over. dst is changed in place; copying
// it afresh at every level made a deep table cost the square of its depth.
func mergeInto(dst, over map[string]any) {
	merge(dst, over, copyValue)
}

// adopt is mergeInto for an over that the caller gives up: its values are
// taken as they are, not copied.
func adopt(dst, over map[string]any) {
	merge(dst, over, func(v any) any { return v })
}

func merge(dst, over map[string]any, take func(any) any) {
	for k, v := range over {
		if dt, ok := dst[k].(map[string]any); ok {
			if ot, ok := v.(map[string]any); ok {
				merge(dt, ot, take)
				continue
			}
		}
		dst[k] = take(v)
	}
}

// copyValue deep-copies a generic TOML value (tables and arrays; scalars
// are immutable).
func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	default:
		return v
	}
}

// lookupTree follows keys (strings) and array indexes (ints) into a generic
// tree.
func lookupTree(tree map[string]any, keys ...any) (any, bool) {
	var cur any = tree
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[k]; !ok {
				return nil, false
			}
		case int:
			a, ok := cur.([]any)
			if !ok || k < 0 || k >= len(a) {
				return nil, false
			}
			cur = a[k]
		default:
			return nil, false
		}
	}
	return cur, true
}

// present reports whether a file (after imports) writes the value at keys.
func present(tree map[string]any, keys ...any) bool {
	_, ok := lookupTree(tree, keys...)
	return ok
}

// CheckConfig reports every key of overrides (a device's or a deployment's
// config for this component) that the recipe's config.defaults does not
// have: config may override a default but not add a key, since nothing
// could refer to it. Keys are followed into tables that are tables in the
// defaults too; a table may not replace a single value, nor the reverse,
// and a value must have its default's type (a number for a number: an
// integer may stand for a float; any array for an array), since the
// component was written for it. The error is an ErrorList whose paths are
// the override's key paths (such as "db.user"); nil when all is well.
func (r *Recipe) CheckConfig(overrides map[string]any) error {
	c := newCollector()
	checkOverrides(c, r.Metadata.Name, "", r.Config.Defaults, overrides, func(p string) (string, int, int) { return "", 0, 0 })
	return c.result()
}

// CheckConfig checks the config of the manifest's component i against r,
// the recipe that runs it, as Recipe.CheckConfig does; each problem names
// this manifest's file, the line and column of the key, and the path
// components[i].config.KEY.
func (m *Manifest) CheckConfig(i int, r *Recipe) error {
	if i < 0 || i >= len(m.Components) {
		return fmt.Errorf("manifest %s has no components[%d]", m.Source, i)
	}
	base := indexPath("components", i) + ".config"
	c := newCollector()
	checkOverrides(c, r.Metadata.Name, "", r.Config.Defaults, m.Components[i].Config, func(p string) (string, int, int) {
		line, col := m.Locate(base + "." + p)
		return m.Source, line, col
	})
	for _, fe := range c.list {
		fe.Path = base + "." + fe.Path
	}
	slices.SortStableFunc(c.list, func(a, b *FieldError) int { return cmp.Compare(a.Line, b.Line) }) // file order
	return c.result()
}

// where locates an override's key path for an error.
type where = func(path string) (file string, line, col int)

func checkOverrides(c *collector, component, path string, defaults, overrides map[string]any, at where) {
	for _, k := range sortedKeys(overrides) {
		p := joinKey(path, k)
		file, line, col := at(p)
		def, ok := defaults[k]
		if !ok {
			c.addAt(file, line, col, p, fmt.Sprintf("not in the config.defaults of %s; config may override a default, not add one", component))
			continue
		}
		dt, defIsTable := def.(map[string]any)
		ot, overIsTable := overrides[k].(map[string]any)
		switch {
		case defIsTable && overIsTable:
			checkOverrides(c, component, p, dt, ot, at)
		case defIsTable != overIsTable || !sameType(def, overrides[k]):
			c.addAt(file, line, col, p, fmt.Sprintf("is %s, but its default is %s", describe(overrides[k]), describe(def)))
		}
	}
}

// sameType reports whether override may replace def: the same TOML type,
// an integer for a float, or any array for an array.
func sameType(def, override any) bool {
	switch def.(type) {
	case float64:
		switch override.(type) {
		case float64, int64:
			return true
		}
		return false
	case []any:
		_, ok := override.([]any)
		return ok
	}
	return fmt.Sprintf("%T", def) == fmt.Sprintf("%T", override)
}
