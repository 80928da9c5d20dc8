package provision

import "io/fs"

// Where a provisioned device keeps its files, as paths on the device.
// agent.toml names the files under /etc/keystone relative to its own
// folder, so the folder reads the same in an image's root folder and on
// the device.
const (
	ConfigDir        = "/etc/keystone"
	ConfigFile       = "/etc/keystone/agent.toml" // 0644 root
	KeyFile          = "/etc/keystone/device.key" // 0600 keystone:keystone
	CertFile         = "/etc/keystone/device.pem" // 0644 root
	BrokerCAFile     = "/etc/keystone/ca.pem"     // 0644 root
	RepositoryCAFile = "/etc/keystone/repository-ca.pem"
	TrustDir         = "/etc/keystone/trust" // <name>.pub, 0644 root
	TUFDir           = "/etc/keystone/tuf"
	TUFRootFile      = "/etc/keystone/tuf/root.json" // 0644 root
	DataDir          = "/var/lib/keystone"           // 0750 keystone:keystone
)

// Modes of what Provision writes.
const (
	modePublic  fs.FileMode = 0o644
	modeKey     fs.FileMode = 0o600
	modeDir     fs.FileMode = 0o755
	modeDataDir fs.FileMode = 0o750
)
