package recipes

import (
	"encoding"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// decode copies a generic TOML tree into a typed value, field by field, and
// reports every unknown key and every value of the wrong type through
// report instead of stopping at the first (go-toml's Decoder stops at the
// first type error). Fields with a problem keep their zero value. Empty
// arrays and tables become nil slices and maps, so that parse → marshal →
// parse gives an equal value.
func decode(tree map[string]any, out any, report func(path, msg string)) {
	d := decoder{report: report}
	d.value("", tree, reflect.ValueOf(out).Elem())
}

type decoder struct {
	report func(path, msg string)
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// textKind names what a TextUnmarshaler field wants, for error messages.
func textKind(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return `a duration string such as "10s" or "1h30m"`
	case reflect.TypeFor[Size]():
		return `a size string such as "512Ki" or "128Mi"`
	}
	return "a string"
}

func (d *decoder) value(path string, v any, rv reflect.Value) {
	if rv.CanAddr() && rv.Addr().Type().Implements(textUnmarshalerType) {
		s, ok := v.(string)
		if !ok {
			d.report(path, fmt.Sprintf("must be %s, not %s", textKind(rv.Type()), describe(v)))
			return
		}
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.report(path, err.Error())
		}
		return
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		d.value(path, v, rv.Elem())
	case reflect.Struct:
		d.structFields(path, v, rv)
	case reflect.Map:
		d.mapEntries(path, v, rv)
	case reflect.Slice:
		d.sliceElems(path, v, rv)
	case reflect.Interface:
		if v != nil {
			rv.Set(reflect.ValueOf(v))
		}
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.report(path, "must be a string, not "+describe(v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.report(path, "must be a boolean (true or false), not "+describe(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			d.report(path, "must be an integer, not "+describe(v))
			return
		}
		if rv.OverflowInt(n) {
			d.report(path, fmt.Sprintf("%d is out of range", n))
			return
		}
		rv.SetInt(n)
	default:
		d.report(path, fmt.Sprintf("cannot decode into %s", rv.Type()))
	}
}

func (d *decoder) structFields(path string, v any, rv reflect.Value) {
	m, ok := v.(map[string]any)
	if !ok {
		d.report(path, "must be a table, not "+describe(v))
		return
	}
	fields := tomlFields(rv.Type())
	for _, k := range sortedKeys(m) {
		i, ok := fields[k]
		if !ok {
			d.report(joinKey(path, k), unknownFieldMessage(k, fields))
			continue
		}
		d.value(joinKey(path, k), m[k], rv.Field(i))
	}
}

func (d *decoder) mapEntries(path string, v any, rv reflect.Value) {
	m, ok := v.(map[string]any)
	if !ok {
		d.report(path, "must be a table, not "+describe(v))
		return
	}
	if len(m) == 0 {
		return
	}
	if rv.Type().Elem().Kind() == reflect.Interface {
		rv.Set(reflect.ValueOf(m)) // free-form, kept as TOML decoded it
		return
	}
	if rv.IsNil() {
		rv.Set(reflect.MakeMapWithSize(rv.Type(), len(m)))
	}
	for _, k := range sortedKeys(m) {
		elem := reflect.New(rv.Type().Elem()).Elem()
		d.value(joinKey(path, k), m[k], elem)
		rv.SetMapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()), elem)
	}
}

func (d *decoder) sliceElems(path string, v any, rv reflect.Value) {
	a, ok := v.([]any)
	if !ok {
		if _, isTable := v.(map[string]any); isTable && rv.Type().Elem().Kind() == reflect.Struct {
			d.report(path, fmt.Sprintf("must be an array of tables, written [[%s]], not a table", path))
			return
		}
		d.report(path, "must be an array, not "+describe(v))
		return
	}
	if len(a) == 0 {
		return
	}
	s := reflect.MakeSlice(rv.Type(), len(a), len(a))
	for i, el := range a {
		d.value(indexPath(path, i), el, s.Index(i))
	}
	rv.Set(s)
}

// tomlFields maps the TOML keys of a struct to field indexes. Fields tagged
// "-" cannot be written in a file.
func tomlFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = i
	}
	return fields
}

// unknownFieldMessage names an unknown key's likely intended spellings, or
// the known keys when none is close.
func unknownFieldMessage(key string, fields map[string]int) string {
	lower := strings.ToLower(key)
	var best []string
	bestDist := 3
	for _, name := range sortedKeys(fields) {
		dist := editDistance(lower, name)
		if dist*2 > len(key) {
			dist = 3 // too far for a key this short
		}
		if len(key) >= 4 && strings.HasPrefix(name, lower) {
			dist = min(dist, 2) // "restart" for "restart_policy"
		}
		switch {
		case dist < bestDist:
			best, bestDist = []string{name}, dist
		case dist == bestDist && dist < 3:
			best = append(best, name)
		}
	}
	if len(best) > 0 {
		quoted := make([]string, len(best))
		for i, b := range best {
			quoted[i] = strconv.Quote(b)
		}
		return "unknown field (did you mean " + strings.Join(quoted, " or ") + "?)"
	}
	return "unknown field (known: " + strings.Join(sortedKeys(fields), ", ") + ")"
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names the TOML type of a decoded value, with the value when short.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) <= 40 {
			return fmt.Sprintf("a string (%q)", x)
		}
		return "a string"
	case int64:
		return fmt.Sprintf("an integer (%d)", x)
	case float64:
		return fmt.Sprintf("a float (%v)", x)
	case bool:
		return fmt.Sprintf("a boolean (%v)", x)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case toml.LocalDate:
		return "a date"
	case toml.LocalTime:
		return "a time"
	case toml.LocalDateTime, time.Time:
		return "a date-time"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
