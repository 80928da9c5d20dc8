package config

import "path/filepath"

// DataPaths is the layout of data_dir. Component names,
// versions and digests given to its methods must already be validated
// (recipe names, semver, 64 hex digits): they become path elements as is.
type DataPaths struct {
	Dir        string // data_dir itself
	DB         string // keystone.db, SQLite in WAL mode
	Components string // components/<name>/<version>/: installed, read-only after install
	Work       string // work/<name>/: each component's writable folder, kept across versions
	Artifacts  string // artifacts/<sha256>: the content-addressed download cache
	Logs       string // logs/<name>.log: each component's captured output
}

// NewDataPaths lays out a data folder; use it for a --data-dir override.
func NewDataPaths(dataDir string) DataPaths {
	return DataPaths{
		Dir:        dataDir,
		DB:         filepath.Join(dataDir, "keystone.db"),
		Components: filepath.Join(dataDir, "components"),
		Work:       filepath.Join(dataDir, "work"),
		Artifacts:  filepath.Join(dataDir, "artifacts"),
		Logs:       filepath.Join(dataDir, "logs"),
	}
}

// DataPaths lays out c.DataDir.
func (c *Config) DataPaths() DataPaths { return NewDataPaths(c.DataDir) }

// VersionDir is components/<name>/<version>/, where a version is installed.
func (p DataPaths) VersionDir(name, version string) string {
	return filepath.Join(p.Components, name, version)
}

// WorkDir is work/<name>/, the component's writable folder.
func (p DataPaths) WorkDir(name string) string { return filepath.Join(p.Work, name) }

// Artifact is artifacts/<sha256>, one cached artifact.
func (p DataPaths) Artifact(sha256 string) string { return filepath.Join(p.Artifacts, sha256) }

// LogFile is logs/<name>.log, the component's current log.
func (p DataPaths) LogFile(name string) string { return filepath.Join(p.Logs, name+".log") }

// ReleasePaths is the layout of root_dir.
type ReleasePaths struct {
	Dir      string // root_dir itself
	Releases string // releases/<version>/keystone-agent
	Current  string // current -> releases/<version>, switched atomically
}

// ReleasePaths lays out c.RootDir.
func (c *Config) ReleasePaths() ReleasePaths {
	return ReleasePaths{
		Dir:      c.RootDir,
		Releases: filepath.Join(c.RootDir, "releases"),
		Current:  filepath.Join(c.RootDir, "current"),
	}
}

// Release is releases/<version>/, one installed agent release.
func (p ReleasePaths) Release(version string) string { return filepath.Join(p.Releases, version) }

// resolvePaths joins every relative path in c to dir.
func resolvePaths(c *Config, dir string) {
	for _, p := range []*string{
		&c.DataDir, &c.RootDir, &c.API.Socket,
		&c.MQTT.CAFile, &c.MQTT.CertFile, &c.MQTT.KeyFile,
		&c.Trust.TUFRoot, &c.Artifacts.CAFile, &c.Plugins.TextfileDir, &c.Dev.WatchDir,
	} {
		*p = resolve(dir, *p)
	}
	for i := range c.Trust.Keys {
		c.Trust.Keys[i] = resolve(dir, c.Trust.Keys[i])
	}
}

// resolve joins a relative path to dir; "" and absolute paths stay as they are.
func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}
