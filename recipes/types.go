package recipes

// The typed model of a recipe and a deployment manifest.
//
// Field docs give the zero value's meaning. Defaults are applied by the
// parser (see defaults.go), so a parsed Recipe never needs a second look at
// "was this set?" except where a pointer says so.

// Kind says how a component runs.
type Kind string

const (
	KindProcess Kind = "process" // a long-running process under lifecycle.run
	KindPlugin  Kind = "plugin"  // a periodic metrics plugin under [plugin]
)

// RestartPolicy says when an exited process is started again.
type RestartPolicy string

const (
	RestartNever     RestartPolicy = "never"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartAlways    RestartPolicy = "always"
)

// DependencyType says how strongly a component needs another.
type DependencyType string

const (
	// DependencyHard: the dependent starts only after the dependency is
	// RUNNING (and healthy), and is stopped while it is not.
	DependencyHard DependencyType = "hard"
	// DependencySoft: start ordering only.
	DependencySoft DependencyType = "soft"
)

// FailurePolicy says what a failed deployment does.
type FailurePolicy string

const (
	FailureRollback FailurePolicy = "rollback" // restore previous versions and config
	FailureKeep     FailurePolicy = "keep"     // leave what succeeded, report what failed
)

// Recipe is one parsed component recipe, imports already merged.
type Recipe struct {
	Format       int               `toml:"format"`
	Imports      []string          `toml:"imports"`
	Metadata     Metadata          `toml:"metadata"`
	Config       ConfigSection     `toml:"config"`
	Artifacts    []Artifact        `toml:"artifacts"`
	Lifecycle    Lifecycle         `toml:"lifecycle"`
	Plugin       *Plugin           `toml:"plugin"` // nil unless kind = "plugin"
	Security     Security          `toml:"security"`
	Resources    Resources         `toml:"resources"`
	Dependencies []Dependency      `toml:"dependencies"`
	Secrets      map[string]Secret `toml:"secrets"` // env var name -> where its value comes from

	// Source is the file the recipe was read from ("" when parsed from bytes
	// with no name). Raw holds that file's exact bytes, which a detached
	// signature covers.
	Source string `toml:"-"`
	Raw    []byte `toml:"-"`
	// ImportedFiles lists the files merged in through imports (and their
	// imports), in merge order, as paths joined to the recipe's folder;
	// nil when there are none. A signature over Raw does not cover them.
	ImportedFiles []string `toml:"-"`
}

// Metadata names and describes a component version.
type Metadata struct {
	Name        string `toml:"name"`    // lowercase dotted, required
	Version     string `toml:"version"` // semver 2.0, required
	Kind        Kind   `toml:"kind"`    // required
	Description string `toml:"description"`
	Publisher   string `toml:"publisher"`
}

// ConfigSection holds the recipe's configuration defaults.
type ConfigSection struct {
	// Defaults is free-form; nil means no defaults.
	Defaults map[string]any `toml:"defaults"`
}

// Artifact is one file a component version needs.
type Artifact struct {
	URI        string `toml:"uri"`        // https://, http:// (when allowed), file://, repo:<target>
	SHA256     string `toml:"sha256"`     // 64 lowercase hex, required
	Unpack     bool   `toml:"unpack"`     // unpack .tar.gz/.tgz/.zip into the version folder
	Executable bool   `toml:"executable"` // chmod +x after placing it
}

// Lifecycle holds the scripts and the run section of a process component.
type Lifecycle struct {
	Install  *Script `toml:"install"`  // nil: nothing to install
	Run      *Run    `toml:"run"`      // required for kind = process, absent for plugins
	Shutdown *Script `toml:"shutdown"` // nil: no shutdown script
}

// Script is a /bin/sh -c script with a timeout.
type Script struct {
	Script  string   `toml:"script"`
	Timeout Duration `toml:"timeout"` // default 2m for install, 10s for shutdown
}

// Run says how to run a process component.
type Run struct {
	Command        string            `toml:"command"` // exec'd directly; exactly one of Command, Script
	Script         string            `toml:"script"`  // run with /bin/sh -c
	Args           []string          `toml:"args"`
	Env            map[string]string `toml:"env"`
	WorkingDir     string            `toml:"working_dir"`    // relative to the work folder; default "."
	RestartPolicy  RestartPolicy     `toml:"restart_policy"` // default on-failure
	RestartBackoff Backoff           `toml:"restart_backoff"`
	MaxRestarts    MaxRestarts       `toml:"max_restarts"`
	BrokenRetry    Duration          `toml:"broken_retry"` // default 30m; 0: only by hand
	StopSignal     string            `toml:"stop_signal"`  // default SIGTERM
	StopTimeout    Duration          `toml:"stop_timeout"` // default 10s
	Health         *Health           `toml:"health"`       // nil: no health check
}

// Backoff bounds the exponential restart delay.
type Backoff struct {
	Initial Duration `toml:"initial"` // default 1s; 0 allowed
	Max     Duration `toml:"max"`     // default 5m
}

// MaxRestarts: more than Count restarts within Window makes the component BROKEN.
type MaxRestarts struct {
	Count  int      `toml:"count"`  // default 5
	Window Duration `toml:"window"` // default 10m
}

// Health is a periodic health check of a running process.
type Health struct {
	Check            string   `toml:"check"`             // http(s)://…, tcp://host:port, cmd:<shell>
	Interval         Duration `toml:"interval"`          // default 10s
	Timeout          Duration `toml:"timeout"`           // default 3s
	StartPeriod      Duration `toml:"start_period"`      // default 0
	FailureThreshold int      `toml:"failure_threshold"` // default 3
}

// Plugin says how to run a metrics plugin component.
type Plugin struct {
	Runtime     string   `toml:"runtime"` // exec | wasm; default exec
	Command     string   `toml:"command"` // required
	Args        []string `toml:"args"`
	Interval    Duration `toml:"interval"` // default 30s
	Jitter      Duration `toml:"jitter"`   // default 0
	Timeout     Duration `toml:"timeout"`  // default 5s; must not exceed interval
	State       bool     `toml:"state"`    // keep returned state between runs
	FSRead      []string `toml:"fs_read"`
	MemoryLimit Size     `toml:"memory_limit"` // wasm memory cap; 0 = runtime default
	Mapping     Mapping  `toml:"mapping"`
}

// Mapping turns plugin metric names into exported Prometheus names.
type Mapping struct {
	Prefix string            `toml:"prefix"`
	Labels map[string]string `toml:"labels"` // constant labels added to every series
	Rename map[string]string `toml:"rename"` // plugin name -> name before prefix
}

// Security is how the component's processes are confined.
type Security struct {
	RunAs           string `toml:"run_as"`            // user:group; "" = agent's default_run_as
	NoNewPrivileges *bool  `toml:"no_new_privileges"` // nil = true
	SeccompProfile  string `toml:"seccomp_profile"`   // default | unconfined | path:/…; "" = default
}

// Resources are the component's limits; zero means no limit.
type Resources struct {
	CPUQuota    int  `toml:"cpu_quota"` // percent of one CPU
	MemoryLimit Size `toml:"memory_limit"`
	PidsLimit   int  `toml:"pids_limit"`
	OpenFiles   int  `toml:"open_files"`
}

// Dependency is an edge to another component.
type Dependency struct {
	Name    string         `toml:"name"`
	Version string         `toml:"version"` // semver range; "" = any
	Type    DependencyType `toml:"type"`    // default hard
}

// Secret says where a secret value comes from. Values are never logged or stored.
type Secret struct {
	From string `toml:"from"` // env | file
	Name string `toml:"name"` // env variable, for from = env
	Path string `toml:"path"` // file, for from = file
}

// Manifest is a parsed deployment manifest.
type Manifest struct {
	Format     int            `toml:"format"`
	Deployment DeploymentSpec `toml:"deployment"`
	Components []ComponentRef `toml:"components"`
	Source     string         `toml:"-"` // the file it was read from, if any

	positions *posIndex // where each key is in Source, for later errors
}

// DeploymentSpec is the [deployment] table.
type DeploymentSpec struct {
	ID            string        `toml:"id"`             // "" = generated by the agent
	FailurePolicy FailurePolicy `toml:"failure_policy"` // default rollback
	HealthTimeout Duration      `toml:"health_timeout"` // default 60s
}

// ComponentRef is one root component a deployment asks for.
type ComponentRef struct {
	Name    string         `toml:"name"`
	Version string         `toml:"version"` // exact semver
	Recipe  string         `toml:"recipe"`  // local path relative to the manifest; "" = from the repository
	Config  map[string]any `toml:"config"`  // deployment overrides
}

// Deployment is desired state as one value: a manifest plus every recipe it
// needs (roots and dependencies), parsed and with signatures checked.
type Deployment struct {
	Manifest *Manifest
	Recipes  map[string]*Recipe // by component name
}
