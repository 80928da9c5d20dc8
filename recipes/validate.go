package recipes

import (
	"fmt"
	"strings"
)

// validateRecipe checks a merged, defaulted recipe and reports every
// problem to c. tree is the merged file, for "was it written"
// questions.
func validateRecipe(c *collector, r *Recipe, tree map[string]any) {
	v := recipeValidator{c: c, r: r, refs: &resolver{config: []map[string]any{r.Config.Defaults}}}
	v.top(tree)
	v.metadata()
	v.kindSections()
	v.artifacts()
	if r.Lifecycle.Install != nil {
		v.script("lifecycle.install", r.Lifecycle.Install)
	}
	if r.Lifecycle.Shutdown != nil {
		v.script("lifecycle.shutdown", r.Lifecycle.Shutdown)
	}
	if r.Lifecycle.Run != nil {
		v.run(r.Lifecycle.Run)
	}
	if r.Plugin != nil {
		v.plugin(r.Plugin)
	}
	v.security()
	v.resources()
	v.dependencies()
	v.secrets()
}

type recipeValidator struct {
	c    *collector
	r    *Recipe
	refs *resolver
}

// check reports msg at path unless it is "".
func (v *recipeValidator) check(path, msg string) {
	if msg != "" {
		v.c.add(path, msg)
	}
}

// interpolated checks the ${…} references of a field that is interpolated.
func (v *recipeValidator) interpolated(path, s string) {
	if _, err := Interpolate(s, v.refs.lookup); err != nil {
		v.c.add(path, v.refs.message(err))
	}
}

// literal refuses ${…} in a field that is not interpolated, where the
// author would otherwise get the text "${…}" verbatim.
func (v *recipeValidator) literal(path, s string) {
	if hasReference(s) {
		v.c.add(path, `"${…}" is not expanded here; only command, args, env values, scripts, `+
			`health checks and mapping labels are interpolated`)
	}
}

func (v *recipeValidator) top(tree map[string]any) {
	switch {
	case !present(tree, "format"):
		v.c.add("format", "required; must be 1")
	case v.r.Format != 1:
		v.c.add("format", fmt.Sprintf("must be 1 (got %d)", v.r.Format))
	}
}

func (v *recipeValidator) metadata() {
	m := v.r.Metadata
	v.check("metadata.name", checkComponentName(m.Name))
	v.check("metadata.version", checkVersion(m.Version))
	if m.Kind == "" {
		v.c.add("metadata.kind", "required; must be process or plugin")
	} else {
		v.check("metadata.kind", oneOf(m.Kind, KindProcess, KindPlugin))
	}
}

// kindSections checks that a process has lifecycle.run and no [plugin], and
// a plugin the reverse.
func (v *recipeValidator) kindSections() {
	if v.c.isBad("metadata.kind") {
		return
	}
	lc := v.r.Lifecycle
	switch v.r.Metadata.Kind {
	case KindProcess:
		if lc.Run == nil && !v.c.isBad("lifecycle") {
			v.c.add("lifecycle.run", `required for kind "process"`)
		}
		if v.r.Plugin != nil {
			v.c.add("plugin", `only for kind "plugin"; a process runs from [lifecycle.run]`)
		}
	case KindPlugin:
		if v.r.Plugin == nil {
			v.c.add("plugin", `required for kind "plugin"`)
		}
		if lc.Run != nil {
			v.c.add("lifecycle.run", `only for kind "process"; a plugin runs from [plugin]`)
		}
		if lc.Shutdown != nil {
			v.c.add("lifecycle.shutdown", `only for kind "process"; a plugin has no process to stop`)
		}
	}
}

func (v *recipeValidator) artifacts() {
	names := map[string]int{}
	for i, a := range v.r.Artifacts {
		p := indexPath("artifacts", i)
		v.check(p+".uri", checkArtifactURI(a.URI))
		v.literal(p+".uri", a.URI)
		v.check(p+".sha256", checkSHA256(a.SHA256))
		if a.URI == "" || checkArtifactURI(a.URI) != "" {
			continue
		}
		name := artifactFileName(a.URI)
		if a.Unpack {
			if !unpackable(name) {
				v.c.add(p+".unpack", fmt.Sprintf("%q is not a .tar.gz, .tgz or .zip archive", name))
			}
			continue
		}
		if j, ok := names[name]; ok {
			v.c.add(p+".uri", fmt.Sprintf("file name %q is also the name of artifacts[%d]", name, j))
		} else {
			names[name] = i
		}
	}
}

func (v *recipeValidator) script(path string, s *Script) {
	if strings.TrimSpace(s.Script) == "" {
		v.c.add(path+".script", "required")
	} else {
		v.interpolated(path+".script", s.Script)
	}
	if s.Timeout.Duration <= 0 {
		v.c.add(path+".timeout", "must be more than 0s")
	}
}

func (v *recipeValidator) run(run *Run) {
	const p = "lifecycle.run"
	switch {
	case v.c.isBad(p+".command") || v.c.isBad(p+".script"):
	case run.Command != "" && run.Script != "":
		v.c.add(p, "has both command and script; give exactly one")
	case run.Command == "" && run.Script == "":
		v.c.add(p, "needs exactly one of command or script")
	}
	if run.Command != "" {
		v.interpolated(p+".command", run.Command)
		v.check(p+".command", checkInFolder(run.Command, "version folder"))
	}
	if run.Script != "" {
		v.interpolated(p+".script", run.Script)
		if len(run.Args) > 0 {
			v.c.add(p+".args", "only with command; a script takes no arguments")
		}
	}
	for i, a := range run.Args {
		v.interpolated(indexPath(p+".args", i), a)
	}
	for _, k := range sortedKeys(run.Env) {
		v.check(joinKey(p+".env", k), checkEnvName(k))
		v.interpolated(joinKey(p+".env", k), run.Env[k])
	}
	if run.WorkingDir == "" {
		v.c.add(p+".working_dir", `must not be empty; "." is the work folder`)
	} else {
		v.check(p+".working_dir", checkInFolder(run.WorkingDir, "work folder"))
		v.literal(p+".working_dir", run.WorkingDir)
	}
	v.check(p+".restart_policy", oneOf(run.RestartPolicy, RestartNever, RestartOnFailure, RestartAlways))
	if run.RestartBackoff.Initial.Duration > run.RestartBackoff.Max.Duration {
		v.c.add(p+".restart_backoff", fmt.Sprintf("initial (%s) must not exceed max (%s)",
			run.RestartBackoff.Initial.Duration, run.RestartBackoff.Max.Duration))
	}
	if run.MaxRestarts.Count < 0 {
		v.c.add(p+".max_restarts.count", "must not be negative")
	}
	if run.MaxRestarts.Window.Duration <= 0 {
		v.c.add(p+".max_restarts.window", "must be more than 0s")
	}
	if run.BrokenRetry.Duration < 0 {
		v.c.add(p+".broken_retry", `must not be negative; "0s" leaves a BROKEN component until it is restarted by hand`)
	}
	v.check(p+".stop_signal", checkSignal(run.StopSignal))
	if h := run.Health; h != nil {
		v.health(p+".health", h)
	}
}

func (v *recipeValidator) health(p string, h *Health) {
	v.check(p+".check", checkHealthCheck(h.Check))
	v.interpolated(p+".check", h.Check)
	if h.Interval.Duration <= 0 {
		v.c.add(p+".interval", "must be more than 0s")
	}
	if h.Timeout.Duration <= 0 {
		v.c.add(p+".timeout", "must be more than 0s")
	} else if h.Interval.Duration > 0 && h.Timeout.Duration > h.Interval.Duration {
		v.c.add(p+".timeout", fmt.Sprintf("%s must not exceed interval (%s)", h.Timeout.Duration, h.Interval.Duration))
	}
	if h.FailureThreshold < 1 {
		v.c.add(p+".failure_threshold", "must be at least 1")
	}
}

func (v *recipeValidator) plugin(pl *Plugin) {
	const p = "plugin"
	v.check(p+".runtime", oneOf(pl.Runtime, "exec", "wasm"))
	if pl.Command == "" {
		v.c.add(p+".command", "required")
	} else {
		v.interpolated(p+".command", pl.Command)
		v.check(p+".command", checkInFolder(pl.Command, "version folder"))
	}
	for i, a := range pl.Args {
		v.interpolated(indexPath(p+".args", i), a)
	}
	if pl.Interval.Duration <= 0 {
		v.c.add(p+".interval", "must be more than 0s")
	}
	switch {
	case pl.Timeout.Duration <= 0:
		v.c.add(p+".timeout", "must be more than 0s")
	case pl.Interval.Duration > 0 && pl.Timeout.Duration > pl.Interval.Duration:
		v.c.add(p+".timeout", fmt.Sprintf("%s must not exceed interval (%s)", pl.Timeout.Duration, pl.Interval.Duration))
	}
	if pl.Interval.Duration > 0 && pl.Jitter.Duration >= pl.Interval.Duration {
		v.c.add(p+".jitter", fmt.Sprintf("%s must be less than interval (%s)", pl.Jitter.Duration, pl.Interval.Duration))
	}
	for i, f := range pl.FSRead {
		fp := indexPath(p+".fs_read", i)
		if f == "" {
			v.c.add(fp, "must not be empty")
		}
		v.check(fp, checkInFolder(f, "version folder"))
		v.literal(fp, f)
	}
	if pl.MemoryLimit != 0 && pl.Runtime == "exec" {
		v.c.add(p+".memory_limit", "only for runtime wasm; limit an exec plugin with resources.memory_limit")
	}
	m := pl.Mapping
	if m.Prefix != "" && !metricNameRE.MatchString(m.Prefix) {
		v.c.add(p+".mapping.prefix", fmt.Sprintf("%q is not a valid start of a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", m.Prefix))
	}
	v.literal(p+".mapping.prefix", m.Prefix)
	for _, k := range sortedKeys(m.Labels) {
		lp := joinKey(p+".mapping.labels", k)
		if !labelNameRE.MatchString(k) || strings.HasPrefix(k, "__") {
			v.c.add(lp, fmt.Sprintf("%q is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)", k))
		}
		v.interpolated(lp, m.Labels[k])
	}
	for _, k := range sortedKeys(m.Rename) {
		if !metricNameRE.MatchString(m.Rename[k]) {
			v.c.add(joinKey(p+".mapping.rename", k), fmt.Sprintf("%q is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", m.Rename[k]))
		}
	}
}

func (v *recipeValidator) security() {
	s := v.r.Security
	v.check("security.run_as", checkRunAs(s.RunAs))
	v.check("security.seccomp_profile", checkSeccomp(s.SeccompProfile))
}

func (v *recipeValidator) resources() {
	r := v.r.Resources
	for _, f := range []struct {
		name string
		n    int
	}{{"cpu_quota", r.CPUQuota}, {"pids_limit", r.PidsLimit}, {"open_files", r.OpenFiles}} {
		if f.n < 0 {
			v.c.add("resources."+f.name, "must not be negative (0 = no limit)")
		}
	}
}

func (v *recipeValidator) dependencies() {
	seen := map[string]int{}
	for i, d := range v.r.Dependencies {
		p := indexPath("dependencies", i)
		v.check(p+".name", checkComponentName(d.Name))
		if d.Name != "" && d.Name == v.r.Metadata.Name {
			v.c.add(p+".name", "a component cannot depend on itself")
		}
		if j, ok := seen[d.Name]; ok && d.Name != "" {
			v.c.add(p+".name", fmt.Sprintf("%q is already a dependency (dependencies[%d])", d.Name, j))
		} else {
			seen[d.Name] = i
		}
		if d.Version != "" {
			v.check(p+".version", checkVersionRange(d.Version))
		}
		v.check(p+".type", oneOf(d.Type, DependencyHard, DependencySoft))
	}
}

func (v *recipeValidator) secrets() {
	var env map[string]string
	if v.r.Lifecycle.Run != nil {
		env = v.r.Lifecycle.Run.Env
	}
	for _, k := range sortedKeys(v.r.Secrets) {
		s := v.r.Secrets[k]
		p := joinKey("secrets", k)
		v.check(p, checkEnvName(k))
		if _, ok := env[k]; ok {
			v.c.add(p, fmt.Sprintf("%s is also set in lifecycle.run.env", k))
		}
		switch s.From {
		case "env":
			if s.Name == "" {
				v.c.add(p+".name", `required for from = "env": the agent's environment variable to read`)
			} else {
				v.check(p+".name", checkEnvName(s.Name))
			}
			if s.Path != "" {
				v.c.add(p+".path", `only for from = "file"`)
			}
		case "file":
			switch {
			case s.Path == "":
				v.c.add(p+".path", `required for from = "file": the absolute path of the file to read`)
			case !strings.HasPrefix(s.Path, "/"):
				v.c.add(p+".path", fmt.Sprintf("%q must be an absolute path", s.Path))
			}
			v.literal(p+".path", s.Path)
			if s.Name != "" {
				v.c.add(p+".name", `only for from = "env"`)
			}
		case "":
			v.c.add(p+".from", "required; must be env or file")
		default:
			v.c.add(p+".from", oneOf(s.From, "env", "file"))
		}
	}
}
