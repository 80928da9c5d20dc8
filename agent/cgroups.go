package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/runner/cgroup"
)

// cgroupsFor is where an agent on dataDir puts its component cgroups when
// Options.Cgroups names no root: cgroup.DefaultRoot (/keystone) for the
// default data folder, and /keystone-<12 hex of the folder's SHA-256>
// for any other. Each data folder has one agent (the lock), so each agent
// has its own root: at start an agent stops every process under its root
// (what a crashed predecessor left), and must never reach the components
// of another agent on the same host — a demo or a test beside a production
// agent. The root is the same on every start from the same folder, which is
// what crash recovery needs.
func cgroupsFor(c cgroup.Config, dataDir string) cgroup.Config {
	if c.Root != "" || c.Disabled {
		return c
	}
	if filepath.Clean(dataDir) == config.DefaultDataDir {
		c.Root = cgroup.DefaultRoot
		return c
	}
	sum := sha256.Sum256([]byte(filepath.Clean(dataDir)))
	c.Root = cgroup.DefaultRoot + "-" + hex.EncodeToString(sum[:6])
	return c
}
