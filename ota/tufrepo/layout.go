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

// Agent releases live beside component versions, under a name no recipe may
// take: the target ReleaseTarget(version, os, arch) is a gzip'd tar holding
// exactly the regular files ReleaseAgentFile (required) and ReleaseShimFile
// (optional), nothing else.
const (
	// ReleaseName is the first element of every agent release target, and a
	// component name Add refuses.
	ReleaseName = "keystone-agent"
	// ReleaseAgentFile is the agent binary inside a release.
	ReleaseAgentFile = "keystone-agent"
	// ReleaseShimFile is the optional shim binary inside a release; without
	// it the agent runs itself as the shim.
	ReleaseShimFile = "keystone-shim"
	// MaxReleaseBytes caps a release: its archive, and its files together
	// once unpacked. AddRelease refuses larger ones and devices refuse them
	// by default.
	MaxReleaseBytes = 128 << 20
)

// ReleaseTarget is the target path of the agent release version for goos
// and goarch (Go's names): keystone-agent/<version>/<goos>-<goarch>, e.g.
// keystone-agent/1.4.0/linux-arm64.
func ReleaseTarget(version, goos, goarch string) string {
	return path.Join(ReleaseName, version, goos+"-"+goarch)
}

func keysDir(dir string) string       { return filepath.Join(dir, "keys") }
func keyPath(dir, role string) string { return filepath.Join(keysDir(dir), role+".key") }
func stagedTargets(dir string) string { return filepath.Join(dir, "staged", "targets.json") }

// ServedDir is the folder of dir to serve over HTTP.
func ServedDir(dir string) string { return filepath.Join(dir, "repository") }

// RootFile is the current root metadata of dir: the trust anchor to install
// on devices as trust.tuf_root.
func RootFile(dir string) string { return filepath.Join(ServedDir(dir), "root.json") }
