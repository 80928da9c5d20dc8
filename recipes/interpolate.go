package recipes

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Interpolate replaces every ${ref} in s by lookup(ref). "$${" stands for a
// literal "${"; any other "$" is copied as is. s is scanned left to right,
// so "$$${x}" is "$" followed by the escape "$${x}", and Escape undoes
// exactly what Interpolate does to text without references. The
// replacement text is not scanned again. An unterminated "${", an empty "${}" or a reference that
// lookup does not know (the error wraps ErrUnknownReference) is an error
// that names the byte offset of the reference.
func Interpolate(s string, lookup func(ref string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf(`unterminated "${" at offset %d (write "$${" for a literal "${")`, i)
			}
			ref := s[i+2 : i+2+end]
			if ref == "" {
				return "", fmt.Errorf(`empty reference "${}" at offset %d`, i)
			}
			v, ok := lookup(ref)
			if !ok {
				return "", fmt.Errorf("%w \"${%s}\" at offset %d", ErrUnknownReference, printable(ref), i)
			}
			b.WriteString(v)
			i += 2 + end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

// Escape returns s written so that Interpolate gives s back unchanged:
// every "${" becomes "$${".
func Escape(s string) string {
	return strings.ReplaceAll(s, "${", "$${")
}

// hasReference reports whether s would be changed by Interpolate.
func hasReference(s string) bool {
	return strings.Contains(s, "${")
}

// namedReference reports whether ref is one of the references a recipe may
// use besides config.
func namedReference(ref string) bool {
	switch ref {
	case "component.name", "component.version", "component.work_dir", "component.version_dir", "device.id":
		return true
	}
	return false
}

// resolver answers ${…} references for one recipe and remembers why the
// last lookup failed, for the error message.
type resolver struct {
	// config holds the configuration layers, the last winning. A reference
	// is looked up through them as EffectiveConfig would merge them, so a
	// configuration is never merged again just to be read.
	config []map[string]any
	// values gives component.* and device.id; nil when validating, where
	// only the names are checked.
	values map[string]string
	why    string
}

func (r *resolver) lookup(ref string) (string, bool) {
	r.why = ""
	if name, ok := strings.CutPrefix(ref, "config."); ok {
		return r.config1(ref, name)
	}
	if !namedReference(ref) {
		r.why = fmt.Sprintf("unknown reference \"${%s}\" (known: ${config.KEY}, ${component.name}, ${component.version}, "+
			"${component.work_dir}, ${component.version_dir}, ${device.id})", ref)
		return "", false
	}
	if r.values == nil {
		return "", true
	}
	return r.values[ref], true
}

func (r *resolver) config1(ref, name string) (string, bool) {
	found := make([]any, len(r.config))
	for i, layer := range r.config {
		found[i] = layer
	}
	for _, key := range strings.Split(name, ".") {
		tables := mergedTables(found)
		if tables == nil {
			r.why = fmt.Sprintf("unknown reference \"${%s}\": config value %q is not a table", ref, strings.TrimSuffix(name, "."+key))
			return "", false
		}
		found = found[:0]
		for _, t := range tables {
			if v, ok := t[key]; ok {
				found = append(found, v)
			}
		}
		if len(found) == 0 || key == "" {
			r.why = fmt.Sprintf("unknown reference \"${%s}\": config.defaults has no %q "+
				"(device and deployment config may override a default, not add one)", ref, name)
			return "", false
		}
	}
	cur := found[len(found)-1]
	s, ok := scalarText(cur)
	if !ok {
		r.why = fmt.Sprintf("reference \"${%s}\" is %s, not a single value", ref, describe(cur))
		return "", false
	}
	return s, true
}

// mergedTables returns the tables that merging the layers' values found at
// one path (the last winning) would merge: the last value and the tables
// right before it, back to a value that is not a table, which they replace.
// It returns nil when the last value is not a table.
func mergedTables(found []any) []map[string]any {
	start := len(found)
	for start > 0 {
		if _, ok := found[start-1].(map[string]any); !ok {
			break
		}
		start--
	}
	if start == len(found) && start > 0 {
		return nil
	}
	tables := make([]map[string]any, 0, len(found)-start)
	for _, v := range found[start:] {
		tables = append(tables, v.(map[string]any))
	}
	return tables
}

// message describes the failure of an Interpolate call made with lookup.
func (r *resolver) message(err error) string {
	if r.why != "" {
		return r.why
	}
	return err.Error()
}

// scalarText writes a config value as text: strings as they are, numbers,
// booleans, dates and times in their TOML form. Tables and arrays have no
// text form.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case float64:
		switch {
		case math.IsInf(x, 1):
			return "inf", true
		case math.IsInf(x, -1):
			return "-inf", true
		case math.IsNaN(x):
			return "nan", true
		}
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		return fmt.Sprint(x), true
	case time.Time:
		return x.Format(time.RFC3339Nano), true
	case map[string]any, []any, nil:
		return "", false
	default:
		return fmt.Sprint(x), true
	}
}
