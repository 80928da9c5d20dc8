package main

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strings"
)

// fileKind is what recipe validate takes a file to be.
type fileKind string

const (
	kindRecipe   fileKind = "recipe"   // a component recipe
	kindManifest fileKind = "manifest" // a deployment manifest
)

// detectKind decides whether the file named path with content data is a
// recipe or a deployment manifest:
//
//  1. a name ending in ".recipe.toml" is a recipe;
//  2. the name "deployment.toml", or one ending in ".deployment.toml", is a
//     manifest;
//  3. otherwise a file with a top-level [deployment] table header is a
//     manifest, and anything else a recipe.
func detectKind(path string, data []byte) fileKind {
	base := filepath.Base(path)
	switch {
	case strings.HasSuffix(base, ".recipe.toml"):
		return kindRecipe
	case base == "deployment.toml" || strings.HasSuffix(base, ".deployment.toml"):
		return kindManifest
	case hasDeploymentTable(data):
		return kindManifest
	default:
		return kindRecipe
	}
}

// hasDeploymentTable reports whether data has a line that is the table
// header [deployment], ignoring white space and a trailing comment. TOML
// table headers always name a path from the top, so this is the top-level
// table wherever the line is.
func hasDeploymentTable(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "[") || strings.HasPrefix(line, "[[") || !strings.HasSuffix(line, "]") {
			continue
		}
		if strings.TrimSpace(line[1:len(line)-1]) == "deployment" {
			return true
		}
	}
	return false
}
