package config

import (
	"log/slog"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
)

// Config is a parsed, validated agent.toml. Every path in it is absolute
// when the file was read with Load, and otherwise relative paths are joined
// to the folder of the name given to Parse.
type Config struct {
	// DeviceID names the device in the fleet and in MQTT topics; required,
	// [A-Za-z0-9._-]{1,128}.
	DeviceID string `toml:"device_id"`
	// Groups are the fleet groups the device belongs to, for targeting
	// rollouts (same character set as DeviceID). Nil: no group.
	Groups []string `toml:"groups"`
	// DataDir holds keystone.db, components/, work/, artifacts/ and logs/
	// (see DataPaths). Default /var/lib/keystone.
	DataDir string `toml:"data_dir"`
	// RootDir holds the agent's releases/<version>/ and the current symlink
	// (see ReleasePaths). Default /opt/keystone.
	RootDir string `toml:"root_dir"`
	// DefaultRunAs is "user" or "user:group" for components whose recipe
	// names no run_as. "": they run as the agent's own user and group.
	DefaultRunAs string `toml:"default_run_as"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `toml:"log_level"`

	API       API       `toml:"api"`
	MQTT      MQTT      `toml:"mqtt"`
	Trust     Trust     `toml:"trust"`
	Security  Security  `toml:"security"`
	Artifacts Artifacts `toml:"artifacts"`
	Plugins   Plugins   `toml:"plugins"`
	Dev       Dev       `toml:"dev"`

	// Components holds the device-level configuration overrides from
	// [components."<name>".config], by component name. Values are as TOML
	// decodes them (string, int64, float64, bool, []any, map[string]any,
	// dates). Nil: no overrides. A component listed with no config table
	// has an empty, non-nil map.
	Components map[string]map[string]any `toml:"-"`

	// Source is the file the configuration was read from ("" when parsed
	// from bytes under no name).
	Source string `toml:"-"`
}

// API is the [api] table: the local API server.
type API struct {
	// Socket is the Unix socket of the local API (mode 0660). Default
	// /run/keystone/agent.sock; it may not be "".
	Socket string `toml:"socket"`
	// SocketGroup is the group that owns the socket, so its members may use
	// keystonectl. "": the agent's own group.
	SocketGroup string `toml:"socket_group"`
	// HTTPListen is the host:port serving GET /metrics and /healthz over
	// TCP. Default 127.0.0.1:9455 when the key is absent; an explicit ""
	// disables the listener. Port 0 picks a free port.
	HTTPListen string `toml:"http_listen"`
}

// MQTT is the [mqtt] table: the connection to the fleet broker.
type MQTT struct {
	// Broker is the broker URL with its port, mqtts://host:port. "" (or no
	// [mqtt] table): local-only mode, no fleet connection.
	Broker string `toml:"broker"`
	// Insecure allows a plain-TCP mqtt:// broker URL, for development
	// brokers only: nothing is encrypted or authenticated. False: only
	// mqtts:// is accepted.
	Insecure bool `toml:"insecure"`
	// CAFile is the CA bundle the broker's certificate is checked against.
	// "": the system's roots.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are the device's client certificate and key for
	// mTLS; both are required with an mqtts:// broker.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// TopicPrefix starts every topic (prefix/device_id/…). Default keystone;
	// it may not be "" nor contain MQTT wildcards.
	TopicPrefix string `toml:"topic_prefix"`
	// SessionExpiry is how long the broker keeps the device's session (its
	// subscription and queued messages) while it is offline. Default 168h.
	SessionExpiry recipes.Duration `toml:"session_expiry"`
	// PublishMetrics also publishes plugin metrics on …/metrics.
	PublishMetrics bool `toml:"publish_metrics"`
}

// Trust is the [trust] table: what the agent believes.
type Trust struct {
	// Keys are ed25519 public key files that may sign recipes (detached
	// <file>.sig) and jobs. Nil: no key is trusted.
	Keys []string `toml:"keys"`
	// TUFRoot is the trusted root.json of the component repository; required
	// when Repository is set, unless AllowUnsigned. "": none.
	TUFRoot string `toml:"tuf_root"`
	// Repository is the https:// URL of the TUF component repository
	// (http:// only with artifacts.allow_http). "": no repository; recipes
	// must come with the deployment.
	Repository string `toml:"repository"`
	// AllowUnsigned runs recipes no trusted signature covers: development
	// mode, warned at every start. False: unsigned recipes are refused.
	AllowUnsigned bool `toml:"allow_unsigned"`
}

// Security is the [security] table.
type Security struct {
	// AllowRoot lets recipes run_as root. False: such recipes are refused.
	AllowRoot bool `toml:"allow_root"`
}

// Artifacts is the [artifacts] table: downloads and the artifact cache.
type Artifacts struct {
	// CacheLimit bounds data_dir/artifacts/ in bytes ("2GiB", "512Mi");
	// least recently used artifacts no installed version needs are removed
	// beyond it. Default 2GiB; 0 keeps only artifacts in use.
	CacheLimit recipes.Size `toml:"cache_limit"`
	// KeepVersions is how many installed versions of each component stay
	// on disk (the current one included) for quick rollback. Default 2;
	// at least 1.
	KeepVersions int `toml:"keep_versions"`
	// AllowHTTP accepts plain http:// artifact URIs (integrity still comes
	// from sha256). False: https:// and file:// only.
	AllowHTTP bool `toml:"allow_http"`
	// CAFile is an extra CA bundle for https:// artifacts and the
	// repository. "": the system's roots only.
	CAFile string `toml:"ca_file"`
	// MaxUnpackedSize bounds what one archive (unpack = true) may expand
	// to, in bytes; past it the archive is refused as UNSAFE_ARCHIVE (a
	// zip or gzip bomb). Default 1GiB; more than 0.
	MaxUnpackedSize recipes.Size `toml:"max_unpacked_size"`
	// MaxEntries bounds the entries (files, folders, links) of one
	// archive, refused past it like MaxUnpackedSize. Default 20000; more
	// than 0.
	MaxEntries int `toml:"max_entries"`
}

// Plugins is the [plugins] table.
type Plugins struct {
	// TextfileDir receives <component>.prom files for node_exporter's
	// textfile collector. "": no textfile output.
	TextfileDir string `toml:"textfile_dir"`
}

// Dev is the [dev] table: development aids.
type Dev struct {
	// WatchDir is a folder of recipes applied at start and again whenever a
	// file in it changes. "": no watch folder.
	WatchDir string `toml:"watch_dir"`
}

// SlogLevel returns LogLevel as a slog.Level (info for an unset level).
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// RunAs splits DefaultRunAs into user and group; both are "" when it is
// unset, and group is "" when only a user is named.
func (c *Config) RunAs() (user, group string) {
	user, group, _ = strings.Cut(c.DefaultRunAs, ":")
	return user, group
}
