package config

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	deviceIDPattern      = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	accountPattern       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$`) // user or group name, or a numeric id
	componentNamePattern = regexp.MustCompile(`^[a-z0-9]+(\.[a-z0-9-]+)+$`)
)

// validator collects problems with the decoded values.
type validator struct {
	file  string
	idx   positions
	prior ErrorList // problems found while decoding; their keys are not checked again
	errs  ErrorList
}

func (v *validator) fail(parts []string, format string, args ...any) {
	if hasProblem(v.prior, keyPath(parts...)) {
		return
	}
	v.errs = append(v.errs, v.idx.at(v.file, parts, fmt.Sprintf(format, args...)))
}

// failIf records the problem when bad is true.
func (v *validator) failIf(bad bool, parts []string, format string, args ...any) {
	if bad {
		v.fail(parts, format, args...)
	}
}

// keyOf lists a key's parts.
func keyOf(parts ...string) []string { return parts }

// validate checks every value of c and returns every problem found.
func validate(c *Config, file string, idx positions, prior ErrorList) ErrorList {
	v := &validator{file: file, idx: idx, prior: prior}

	switch {
	case c.DeviceID == "":
		v.fail(keyOf("device_id"), "required")
	case !deviceIDPattern.MatchString(c.DeviceID):
		v.fail(keyOf("device_id"), "%q must be 1 to 128 of A-Z a-z 0-9 . _ -", c.DeviceID)
	}
	seen := map[string]bool{}
	for _, g := range c.Groups {
		switch {
		case !deviceIDPattern.MatchString(g):
			v.fail(keyOf("groups"), "group %q must be 1 to 128 of A-Z a-z 0-9 . _ -", g)
		case seen[g]:
			v.fail(keyOf("groups"), "group %q is listed twice", g)
		}
		seen[g] = true
	}
	v.nonEmpty(c.DataDir, "data_dir")
	v.nonEmpty(c.RootDir, "root_dir")
	if c.DefaultRunAs != "" {
		user, group, hasGroup := strings.Cut(c.DefaultRunAs, ":")
		if !accountPattern.MatchString(user) || hasGroup && !accountPattern.MatchString(group) {
			v.fail(keyOf("default_run_as"), "%q must be user or user:group", c.DefaultRunAs)
		}
	}
	v.failIf(!slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel),
		keyOf("log_level"), "%q must be one of debug, info, warn, error", c.LogLevel)

	v.api(&c.API)
	v.mqtt(&c.MQTT)
	v.trust(&c.Trust, c.Artifacts.AllowHTTP)
	v.artifacts(&c.Artifacts)
	for _, name := range slices.Sorted(maps.Keys(c.Components)) {
		v.failIf(!componentNamePattern.MatchString(name),
			keyOf("components", name), "component name %q must be lowercase and dotted, like com.example.hello", name)
	}
	return v.errs
}

func (v *validator) nonEmpty(s string, parts ...string) {
	v.failIf(s == "", parts, "must not be empty")
}

func (v *validator) api(a *API) {
	v.nonEmpty(a.Socket, "api", "socket")
	v.failIf(a.SocketGroup != "" && !accountPattern.MatchString(a.SocketGroup),
		keyOf("api", "socket_group"), "%q is not a group name or id", a.SocketGroup)
	if a.HTTPListen != "" {
		if _, port, err := net.SplitHostPort(a.HTTPListen); err != nil || !validPort(port) {
			v.fail(keyOf("api", "http_listen"), `%q must be host:port, e.g. "127.0.0.1:9455" (or "" to disable)`, a.HTTPListen)
		}
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func (v *validator) mqtt(m *MQTT) {
	if m.TopicPrefix == "" {
		v.fail(keyOf("mqtt", "topic_prefix"), "must not be empty")
	} else if strings.ContainsAny(m.TopicPrefix, "+#\x00") || strings.HasPrefix(m.TopicPrefix, "/") ||
		strings.HasSuffix(m.TopicPrefix, "/") || strings.Contains(m.TopicPrefix, "//") {
		v.fail(keyOf("mqtt", "topic_prefix"), "%q must be MQTT topic levels without wildcards or empty levels", m.TopicPrefix)
	}
	// The broker holds a session for at most 2^32-1 seconds (MQTT v5).
	v.failIf(m.SessionExpiry.Duration < 0 || m.SessionExpiry.Duration > (1<<32-1)*time.Second,
		keyOf("mqtt", "session_expiry"), "must be between 0s and 1193046h")
	v.failIf(m.CertFile != "" && m.KeyFile == "", keyOf("mqtt", "cert_file"), "needs mqtt.key_file too")
	v.failIf(m.KeyFile != "" && m.CertFile == "", keyOf("mqtt", "key_file"), "needs mqtt.cert_file too")
	if m.Broker == "" {
		return // local-only mode
	}
	u, err := url.Parse(m.Broker)
	if err != nil {
		v.fail(keyOf("mqtt", "broker"), "%q is not a URL", m.Broker)
		return
	}
	broker := keyOf("mqtt", "broker")
	switch u.Scheme {
	case "mqtts":
		v.failIf(m.CertFile == "" && m.KeyFile == "", broker,
			"an mqtts:// broker needs mqtt.cert_file and mqtt.key_file (the device authenticates with mTLS)")
	case "mqtt":
		v.failIf(!m.Insecure, broker, "%q is plain TCP: use mqtts://, or set mqtt.insecure = true for a development broker", m.Broker)
	default:
		v.fail(broker, "%q must be an mqtts:// URL (mqtt:// only with mqtt.insecure = true)", m.Broker)
		return
	}
	v.failIf(u.Hostname() == "" || u.Port() == "" || !validPort(u.Port()),
		broker, "%q must name a host and port, e.g. mqtts://broker.example:8883", m.Broker)
}

func (v *validator) trust(t *Trust, allowHTTP bool) {
	for _, k := range t.Keys {
		v.failIf(k == "", keyOf("trust", "keys"), "a key path is empty")
	}
	if t.Repository == "" {
		return
	}
	u, err := url.Parse(t.Repository)
	switch {
	case err != nil || u.Host == "":
		v.fail(keyOf("trust", "repository"), "%q must be an https:// URL", t.Repository)
	case u.Scheme == "http" && !allowHTTP:
		v.fail(keyOf("trust", "repository"), "%q is plain http: use https://, or set artifacts.allow_http = true", t.Repository)
	case u.Scheme != "https" && u.Scheme != "http":
		v.fail(keyOf("trust", "repository"), "%q must be an https:// URL", t.Repository)
	}
	v.failIf(t.TUFRoot == "" && !t.AllowUnsigned, keyOf("trust", "repository"),
		"needs trust.tuf_root, the repository's trusted root.json (or trust.allow_unsigned = true)")
}

func (v *validator) artifacts(a *Artifacts) {
	v.failIf(a.CacheLimit < 0, keyOf("artifacts", "cache_limit"), "must not be negative")
	v.failIf(a.KeepVersions < 1, keyOf("artifacts", "keep_versions"), "%d must be at least 1 (the current version)", a.KeepVersions)
	v.failIf(a.MaxUnpackedSize <= 0, keyOf("artifacts", "max_unpacked_size"), "must be more than 0")
	v.failIf(a.MaxEntries < 1, keyOf("artifacts", "max_entries"), "%d must be at least 1", a.MaxEntries)
}

// sortErrors puts problems in file order; those with no position go last,
// by key.
func sortErrors(errs ErrorList) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			return cmp.Compare(b.Line, a.Line) // positioned first
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), strings.Compare(a.Path, b.Path))
	})
}
