package config

import (
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

// Defaults for keys agent.toml leaves out.
const (
	DefaultDataDir     = "/var/lib/keystone"
	DefaultRootDir     = "/opt/keystone"
	DefaultLogLevel    = "info"
	DefaultSocket      = "/run/keystone/agent.sock"
	DefaultHTTPListen  = "127.0.0.1:9455"
	DefaultTopicPrefix = "keystone"
	// DefaultSessionExpiry: a device offline for a week keeps its session.
	DefaultSessionExpiry = 7 * 24 * time.Hour
	DefaultCacheLimit    = 2 << 30 // bytes
	DefaultKeepVersions  = 2
	// DefaultMaxUnpackedSize and DefaultMaxEntries bound one archive.
	DefaultMaxUnpackedSize = 1 << 30 // bytes
	DefaultMaxEntries      = 20000
)

// Default returns a configuration holding every default and nothing else
// (in particular no DeviceID, which has none). Parse decodes a file over
// it, so a key the file leaves out keeps its default and a key written as
// "" is "" — this is how api.http_listen = "" disables the listener.
func Default() *Config {
	return &Config{
		DataDir:  DefaultDataDir,
		RootDir:  DefaultRootDir,
		LogLevel: DefaultLogLevel,
		API:      API{Socket: DefaultSocket, HTTPListen: DefaultHTTPListen},
		MQTT:     MQTT{TopicPrefix: DefaultTopicPrefix, SessionExpiry: recipes.Duration{Duration: DefaultSessionExpiry}},
		Artifacts: Artifacts{
			CacheLimit:      recipes.Size(DefaultCacheLimit),
			KeepVersions:    DefaultKeepVersions,
			MaxUnpackedSize: recipes.Size(DefaultMaxUnpackedSize),
			MaxEntries:      DefaultMaxEntries,
		},
	}
}
