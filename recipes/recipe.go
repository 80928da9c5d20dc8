package recipes

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"
)

// ParseRecipeFile reads a recipe file, merges the files it imports
// (relative to it) and validates the result. On failure the error is an
// ErrorList naming every problem, or an error saying the file could not be
// read.
func ParseRecipeFile(path string) (*Recipe, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recipe: %w", err)
	}
	return ParseRecipe(path, data)
}

// ParseRecipe parses a recipe from data. name is the file name used in
// errors and in Source; imports are read relative to filepath.Dir(name).
// Imports are merged first, in order, and the file itself wins; tables merge
// key by key and any other value (arrays included) is replaced whole. An
// import must be a regular file inside that folder's tree, reached by no
// symbolic link that leaves it. The
// merged recipe is strictly checked (unknown keys, types, values, ${…}
// references), defaults are filled in, and on success Imports is nil and
// ImportedFiles lists the files merged. On failure the error is an
// ErrorList with every problem found.
func ParseRecipe(name string, data []byte) (*Recipe, error) {
	c := newCollector()
	l := &importLoader{c: c, cache: map[string]*loaded{}, dir: filepath.Dir(name)}
	defer l.close()
	top := l.load(name, filepath.Base(name), data, nil)
	if top == nil {
		return nil, c.result()
	}
	c.docs = top.docs
	r := &Recipe{}
	// The files were checked one by one; this pass only builds the value
	// and notes which fields are unusable so later checks stay quiet.
	decode(top.merged, r, func(path, _ string) { c.bad[path] = true })
	applyRecipeDefaults(r, top.merged)
	validateRecipe(c, r, top.merged)
	if err := c.result(); err != nil {
		return nil, err
	}
	r.Imports = nil
	r.ImportedFiles = top.files
	r.Source = name
	r.Raw = bytes.Clone(data)
	return r, nil
}

// Marshal writes the recipe as TOML: every field, defaults included, so the
// output is the recipe exactly as the agent sees it, and parsing it gives an
// equal Recipe (Source, Raw and ImportedFiles aside). ${…} references are
// written as they are; marshal a recipe before Render, not after.
func (r *Recipe) Marshal() ([]byte, error) {
	return marshalTOML("recipe "+r.Metadata.Name, r)
}

func marshalTOML(what string, v any) ([]byte, error) {
	b, err := toml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", what, err)
	}
	return b, nil
}
