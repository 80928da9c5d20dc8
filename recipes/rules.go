package recipes

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// The small rules fields are checked against. Each returns "" when the value
// is fine, or a message saying what is wrong.

var (
	componentNameRE = regexp.MustCompile(`^[a-z0-9]+(\.[a-z0-9-]+)+$`)
	envNameRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	accountRE       = regexp.MustCompile(`^([a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10})$`)
	metricNameRE    = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE     = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	deploymentIDRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	sha256RE        = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// maxNameLen keeps a component name usable as a folder name.
const maxNameLen = 128

func checkComponentName(s string) string {
	switch {
	case s == "":
		return "required"
	case len(s) > maxNameLen:
		return fmt.Sprintf("must be at most %d characters", maxNameLen)
	case !componentNameRE.MatchString(s):
		return fmt.Sprintf(`%q is not a component name: lowercase dotted words like "com.example.hello" (^[a-z0-9]+(\.[a-z0-9-]+)+$)`, s)
	}
	return ""
}

func checkVersion(s string) string {
	if s == "" {
		return "required"
	}
	if _, err := semver.StrictNewVersion(s); err != nil {
		return fmt.Sprintf("%q is not a semantic version like \"1.2.0\" (%v)", s, err)
	}
	return ""
}

func checkVersionRange(s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be blank; leave it out to accept any version"
	}
	if _, err := semver.NewConstraint(s); err != nil {
		return fmt.Sprintf("%q is not a version range like \">=1.0.0, <2.0.0\" (%v)", s, err)
	}
	return ""
}

func checkSHA256(s string) string {
	switch {
	case s == "":
		return "required"
	case !sha256RE.MatchString(s):
		return fmt.Sprintf("%q is not a SHA-256 digest: 64 lowercase hex digits", s)
	}
	return ""
}

// checkArtifactURI allows https://, http://, file:///absolute and repo:<target>.
func checkArtifactURI(s string) string {
	if s == "" {
		return "required"
	}
	if target, ok := strings.CutPrefix(s, "repo:"); ok {
		if target == "" || strings.HasPrefix(target, "/") || escapesFolder(target) {
			return fmt.Sprintf("%q: repo: needs a target path in the repository, like \"repo:hello/1.2.0/hello.tar.gz\"", s)
		}
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URI: %v", s, err)
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return fmt.Sprintf("%q has no host", s)
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Sprintf("%q: a file URI needs an absolute path, like \"file:///srv/hello.tar.gz\"", s)
		}
	default:
		return fmt.Sprintf("%q: scheme must be https, http, file or repo:", s)
	}
	return ""
}

// artifactFileName is the name an artifact gets in the version folder.
func artifactFileName(uri string) string {
	if target, ok := strings.CutPrefix(uri, "repo:"); ok {
		return path.Base(target)
	}
	if u, err := url.Parse(uri); err == nil {
		return path.Base(u.Path)
	}
	return ""
}

// unpackable reports whether an artifact name has an archive extension.
func unpackable(name string) bool {
	for _, ext := range []string{".tar.gz", ".tgz", ".zip"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// checkHealthCheck validates http(s)://, tcp://host:port and cmd:<shell>.
// When the check still holds ${…} references only its scheme is checked;
// Render checks the rest once they are resolved.
func checkHealthCheck(s string) string {
	switch {
	case s == "":
		return "required"
	case strings.HasPrefix(s, "cmd:"):
		if strings.TrimSpace(strings.TrimPrefix(s, "cmd:")) == "" {
			return "cmd: needs a shell command, like \"cmd:test -f ready\""
		}
		return ""
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"), strings.HasPrefix(s, "tcp://"):
	default:
		return fmt.Sprintf("%q must start with http://, https://, tcp:// or cmd:", s)
	}
	if hasReference(s) {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URL: %v", s, err)
	}
	if u.Host == "" {
		return fmt.Sprintf("%q has no host", s)
	}
	if u.Scheme == "tcp" {
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return fmt.Sprintf("%q: tcp:// needs host:port, like \"tcp://127.0.0.1:5432\"", s)
		}
		if u.Path != "" && u.Path != "/" {
			return fmt.Sprintf("%q: tcp:// takes no path", s)
		}
	}
	return ""
}

// knownSignal reports whether stop_signal may name s.
func knownSignal(s string) bool {
	switch s {
	case "SIGHUP", "SIGINT", "SIGQUIT", "SIGABRT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGPIPE",
		"SIGALRM", "SIGTERM", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGWINCH", "SIGPWR", "SIGTTIN",
		"SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGSYS":
		return true
	}
	return false
}

func checkSignal(s string) string {
	if !knownSignal(s) {
		return fmt.Sprintf("%q is not a signal name like \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\"", s)
	}
	return ""
}

// checkRunAs allows "user" and "user:group", names or numeric ids.
func checkRunAs(s string) string {
	if s == "" {
		return ""
	}
	user, group, hasGroup := strings.Cut(s, ":")
	if !accountRE.MatchString(user) || hasGroup && !accountRE.MatchString(group) {
		return fmt.Sprintf("%q must be \"user\" or \"user:group\" (names or numeric ids)", s)
	}
	return ""
}

func checkSeccomp(s string) string {
	switch {
	case s == "", s == "default", s == "unconfined":
		return ""
	case strings.HasPrefix(s, "path:"):
		if p := strings.TrimPrefix(s, "path:"); !path.IsAbs(p) {
			return fmt.Sprintf("%q: path: needs an absolute file, like \"path:/etc/keystone/seccomp/x.json\"", s)
		}
		return ""
	}
	return fmt.Sprintf("%q must be default, unconfined or path:/absolute/file.json", s)
}

// escapesFolder reports whether a relative path climbs out of the folder it
// is relative to.
func escapesFolder(p string) bool {
	if path.IsAbs(p) {
		return false
	}
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}

// checkInFolder allows absolute paths and relative paths that stay inside
// their folder.
func checkInFolder(p, folder string) string {
	if escapesFolder(p) {
		return fmt.Sprintf("%q climbs out of the %s", p, folder)
	}
	return ""
}

// checkRelativeInside allows only relative paths that stay inside their folder.
func checkRelativeInside(p, folder string) string {
	switch {
	case p == "":
		return "must not be empty"
	case path.IsAbs(p):
		return fmt.Sprintf("%q must be relative to the %s", p, folder)
	case escapesFolder(p):
		return fmt.Sprintf("%q climbs out of the %s", p, folder)
	}
	return ""
}

func checkEnvName(s string) string {
	if !envNameRE.MatchString(s) {
		return fmt.Sprintf("%q is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", s)
	}
	return ""
}

// oneOf checks an enumerated value.
func oneOf[T ~string](v T, allowed ...T) string {
	for _, a := range allowed {
		if v == a {
			return ""
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return fmt.Sprintf("must be one of %s (got %q)", strings.Join(names, ", "), string(v))
}
