package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/keystone-edge/keystone/agent/api"
)

// deploymentRequest reads the manifest at manifestPath and every local file
// it references into a request for POST /v1/deployments: each recipe named
// by components[].recipe, its detached signature (<recipe>.sig) when there
// is one, and the files the recipe imports, recursively. Files are keyed by
// their path relative to the manifest's folder, in the slash form the
// manifest uses, so the agent resolves them as it would on disk.
//
// The files are only collected here; the agent checks everything. A
// manifest too broken to list its recipes is sent alone, so that the
// agent's answer lists every problem. Files the manifest names that cannot
// be read are all reported together.
func deploymentRequest(manifestPath string) (api.DeploymentRequest, error) {
	data, err := readInputFile(manifestPath)
	if err != nil {
		return api.DeploymentRequest{}, fmt.Errorf("read manifest: %w", err)
	}
	req := api.DeploymentRequest{Manifest: string(data)}

	var refs struct {
		Components []struct {
			Recipe string `toml:"recipe"`
		} `toml:"components"`
	}
	if toml.Unmarshal(data, &refs) != nil {
		return req, nil
	}
	c := &fileCollector{base: filepath.Dir(manifestPath), files: map[string][]byte{}}
	for i, ref := range refs.Components {
		if ref.Recipe == "" {
			continue // from the repository
		}
		c.recipe(fmt.Sprintf("components[%d].recipe", i), ref.Recipe)
	}
	if len(c.problems) > 0 {
		return req, fmt.Errorf("%s: cannot read the files it names:\n  %s", manifestPath, strings.Join(c.problems, "\n  "))
	}
	if len(c.files) > 0 {
		req.Files = c.files
	}
	return req, nil
}

// fileCollector gathers a manifest's local files.
type fileCollector struct {
	base     string            // the manifest's folder
	files    map[string][]byte // by path relative to base, slash-separated
	problems []string
}

// recipe adds the recipe at key, its signature and its imports. key is
// the path the manifest (or the importing recipe, joined to its folder)
// writes, cleaned: the agent lays the files out as a folder beside the
// manifest, so "./a.toml" and "a.toml" are one file, and it accepts only
// clean names. field names where key came from, for problems.
func (c *fileCollector) recipe(field, key string) {
	if !c.inside(key) {
		return
	}
	key = path.Clean(filepath.ToSlash(key))
	if _, seen := c.files[key]; seen {
		return
	}
	data, err := readInputFile(c.local(key))
	if err != nil {
		c.problems = append(c.problems, fmt.Sprintf("%s: %s", field, readProblem(err)))
		return
	}
	c.files[key] = data
	if sig, err := readInputFile(c.local(key + ".sig")); err == nil {
		c.files[key+".sig"] = sig
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.problems = append(c.problems, fmt.Sprintf("%s: signature: %s", field, readProblem(err)))
	}

	var imports struct {
		Imports []string `toml:"imports"`
	}
	if toml.Unmarshal(data, &imports) != nil {
		return // the agent reports the recipe's syntax
	}
	for i, imp := range imports.Imports {
		c.recipe(fmt.Sprintf("%s: imports[%d]", key, i), path.Join(path.Dir(key), filepath.ToSlash(imp)))
	}
}

// inside reports whether key may be read: a path that is absolute, leaves
// the manifest's folder or holds a ${…} reference is not read, and the
// agent refuses it with the reason.
func (c *fileCollector) inside(key string) bool {
	clean := path.Clean(filepath.ToSlash(key))
	return !path.IsAbs(clean) && clean != ".." && !strings.HasPrefix(clean, "../") && !strings.Contains(key, "${")
}

// local is the file on disk for key.
func (c *fileCollector) local(key string) string {
	return filepath.Join(c.base, filepath.FromSlash(key))
}

// readProblem says briefly why a file could not be read.
func readProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", pe.Path, pe.Err)
	}
	return err.Error()
}
