package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"
)

// Load reads, decodes and validates the agent configuration at path.
// Relative paths inside it are resolved against the file's folder, so the
// returned Config holds absolute paths. A file that cannot be read is an
// error wrapping the os error; a file with problems is an ErrorList naming
// each of them as path:line:col.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config %s: %w", path, err)
	}
	return parse(path, filepath.Dir(abs), data)
}

// Parse decodes and validates an agent configuration held in data. name is
// used in error messages, and relative paths are joined to its folder
// (filepath.Dir(name); "." — so they stay relative — for a bare name).
// The error, if any, is an ErrorList.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, filepath.Dir(name), data)
}

func parse(name, dir string, data []byte) (*Config, error) {
	var generic map[string]any
	if err := toml.Unmarshal(data, &generic); err != nil {
		return nil, ErrorList{syntaxError(name, err)}
	}
	idx := indexPositions(data)
	f, errs := decode(name, data, generic, idx)
	c := f.config()
	c.Source = name
	errs = append(errs, validate(c, name, idx, errs)...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	resolvePaths(c, dir)
	return c, nil
}

// file is what agent.toml decodes into: the Config with its component
// tables in their TOML shape.
type file struct {
	Config
	ComponentTables map[string]componentTable `toml:"components"`
}

// componentTable is [components."<name>"].
type componentTable struct {
	Config map[string]any `toml:"config"`
}

// config returns the Config with Components filled from the tables.
func (f *file) config() *Config {
	c := f.Config
	if len(f.ComponentTables) > 0 {
		c.Components = make(map[string]map[string]any, len(f.ComponentTables))
		for name, t := range f.ComponentTables {
			cfg := t.Config
			if cfg == nil {
				cfg = map[string]any{}
			}
			c.Components[name] = cfg
		}
	}
	return &c
}

// decode decodes data strictly over the defaults. go-toml stops at the
// first value of the wrong type, so decode records it, removes that key
// from generic (the same document decoded into plain maps), re-encodes
// that and decodes again, until only unknown keys (all reported at once)
// or nothing is left. Positions come from the original document's index.
// The file returned holds whatever decoded; a key that failed keeps its
// default.
func decode(name string, data []byte, generic map[string]any, idx positions) (*file, ErrorList) {
	var errs ErrorList
	doc := data
	for {
		f := &file{Config: *Default()}
		err := toml.NewDecoder(bytes.NewReader(doc)).DisallowUnknownFields().Decode(f)
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case err == nil:
			return f, errs
		case errors.As(err, &strict):
			for _, e := range strict.Errors {
				errs = append(errs, idx.at(name, e.Key(), "unknown key"))
			}
			return f, errs
		case errors.As(err, &de) && len(de.Key()) > 0:
			key := de.Key()
			if k, ok := idx.find(key); ok {
				key = k.parts
			}
			errs = append(errs, idx.at(name, key, typeMessage(de, key, generic)))
			if !deleteKey(generic, key) {
				return f, errs
			}
			if doc, err = toml.Marshal(generic); err != nil {
				return f, append(errs, &Error{File: name, Message: fmt.Sprintf("re-encode after errors: %v", err)})
			}
		default:
			return f, append(errs, &Error{File: name, Message: trimTOML(err.Error())})
		}
	}
}

// syntaxError turns a go-toml parse error into an Error at its position.
func syntaxError(name string, err error) *Error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		return &Error{File: name, Line: line, Col: col, Message: trimTOML(de.Error())}
	}
	return &Error{File: name, Message: trimTOML(err.Error())}
}

// deleteKey removes the key at path from a decoded generic document and
// reports whether it was there.
func deleteKey(doc map[string]any, path []string) bool {
	m := doc
	for i, part := range path {
		if i == len(path)-1 {
			_, ok := m[part]
			delete(m, part)
			return ok
		}
		next, ok := m[part].(map[string]any)
		if !ok {
			return false
		}
		m = next
	}
	return false
}
