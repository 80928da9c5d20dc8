package tufrepo

import (
	"path"
	"path/filepath"
)

// Top-level role names, as go-tuf spells them.
const (
	RoleRoot      = "root"
	RoleTargets   = "targets"
	RoleSnapshot  = "snapshot"
	RoleTimestamp = "timestamp"
)

// Roles lists the top-level roles in signing order.
var Roles = []string{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp}

// RecipeFile is the file name of a component version's recipe target.
const RecipeFile = "component.recipe.toml"

// RecipeTarget is the target path of the recipe of name@version.
func RecipeTarget(name, version string) string {
	return path.Join(name, version, RecipeFile)
}

// ArtifactTarget is the target path of an artifact file of name@version.
func ArtifactTarget(name, version, file string) string {
	return path.Join(name, version, file)
}

func keysDir(dir string) string       { return filepath.Join(dir, "keys") }
func keyPath(dir, role string) string { return filepath.Join(keysDir(dir), role+".key") }
func stagedTargets(dir string) string { return filepath.Join(dir, "staged", "targets.json") }

// ServedDir is the folder of dir to serve over HTTP.
func ServedDir(dir string) string { return filepath.Join(dir, "repository") }

// RootFile is the current root metadata of dir: the trust anchor to install
// on devices as trust.tuf_root.
func RootFile(dir string) string { return filepath.Join(ServedDir(dir), "root.json") }
