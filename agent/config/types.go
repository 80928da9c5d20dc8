package config

import (
	"reflect"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/keystone-edge/keystone/recipes"
)

// typeMessage explains a value go-toml refused. A value its type's own
// UnmarshalText refused (a size, a duration) keeps that message; a value of
// the wrong TOML type is described as "must be X, not Y" in TOML terms
// rather than go-toml's Go type names.
func typeMessage(de *toml.DecodeError, key []string, doc map[string]any) string {
	msg := trimTOML(de.Error())
	if !strings.Contains(msg, "cannot decode TOML") && !strings.Contains(msg, "cannot store") {
		return msg
	}
	want := describeType(fieldType(reflect.TypeFor[file](), key))
	if want == "" {
		return msg
	}
	return "must be " + want + ", not " + describeValue(valueAt(doc, key))
}

func trimTOML(msg string) string { return strings.TrimPrefix(msg, "toml: ") }

// fieldType follows a key path through the decode target's toml tags,
// embedded structs and maps; nil when the path leads nowhere.
func fieldType(t reflect.Type, path []string) reflect.Type {
	for _, part := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			f, ok := fieldByTag(t, part)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	return t
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && tag == "" {
			if inner, ok := fieldByTag(f.Type, name); ok {
				return inner, true
			}
			continue
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// describeType names what a field accepts, in TOML terms.
func describeType(t reflect.Type) string {
	if t == nil {
		return ""
	}
	switch t {
	case reflect.TypeFor[recipes.Size]():
		return `a size such as "512Mi" or "2GiB"`
	case reflect.TypeFor[recipes.Duration]():
		return `a duration such as "10s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice:
		if inner := describeType(t.Elem()); inner != "" {
			return "an array of " + strings.TrimPrefix(strings.TrimPrefix(inner, "an "), "a ") + "s"
		}
		return "an array"
	case reflect.Struct, reflect.Map:
		return "a table"
	}
	return ""
}

// describeValue names the TOML type of a decoded value.
func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		for _, e := range v {
			if _, ok := e.(string); !ok {
				return "an array holding " + describeValue(e)
			}
		}
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time, toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		return "a date or time"
	}
	return "that"
}

// valueAt returns the decoded value at path, or nil.
func valueAt(doc map[string]any, path []string) any {
	var v any = doc
	for _, part := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}
