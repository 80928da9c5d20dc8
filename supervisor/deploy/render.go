package deploy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/supervisor"
)

// render makes the component the supervisor runs from a parsed recipe:
// configuration merged (recipe defaults < device config < deployment
// overrides), every ${…} resolved, secrets read, and the agent's policy
// checked (root only with security.allow_root). The rendered recipe
// drops Source, Raw and ImportedFiles, so that only what the component runs
// decides whether the supervisor replaces it.
func (e *Engine) render(r *recipes.Recipe, overrides map[string]any, label string, check admission) (*supervisor.Component, []Problem) {
	name, version := r.Metadata.Name, r.Metadata.Version
	vdir := e.cfg.Fetcher.VersionDir(name, version)
	wdir := filepath.Join(e.cfg.WorkDir, name)
	var probs []Problem
	if err := r.CheckConfig(e.cfg.DeviceConfig[name]); err != nil {
		probs = append(probs, configProblems(err, fmt.Sprintf("agent.toml: components.%q.config", name))...)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	config := recipes.EffectiveConfig(r.Config.Defaults, e.cfg.DeviceConfig[name], overrides)
	out, err := r.Render(config, recipes.Vars{DeviceID: e.cfg.DeviceID, WorkDir: wdir, VersionDir: vdir})
	if err != nil {
		return nil, listProblems(err, "", label)
	}
	out.Source, out.Raw, out.ImportedFiles = "", nil, nil
	if p := e.rootProblem(out, label); p != nil && check == admitNew {
		probs = append(probs, *p)
	}
	secrets, sp := resolveSecrets(out.Secrets, label)
	probs = append(probs, sp...)
	if len(probs) > 0 {
		return nil, probs
	}
	return &supervisor.Component{Recipe: out, VersionDir: vdir, WorkDir: wdir, Secrets: secrets, Config: config}, nil
}

// admission says whether a set is being let in or was let in before.
type admission int

const (
	// admitNew checks the agent's policy (root only with
	// security.allow_root): a deployment submitted, or a rollback asked for.
	admitNew admission = iota
	// admitRecorded skips the policy for a set the store already holds (the
	// current set at start, a deployment resumed, the set a rollback
	// restores). It was admitted under the policy of its day; refusing it
	// now would stop the agent itself from starting after an upgrade or a
	// change of agent.toml, and a device that cannot start its agent cannot
	// be fixed remotely. The runner still applies the policy at every
	// start, so a component that now breaks it fails on its own, with the
	// reason, while the agent stays up to take the deployment that fixes it.
	admitRecorded
)

// rootProblem refuses, without security.allow_root, a component whose
// programs would run as root. It decides as the runner does at every start
// (runner.RunsAsRoot: uid 0 by value, an empty run_as being the agent), so
// that a deployment it accepts is not refused later, half applied.
func (e *Engine) rootProblem(r *recipes.Recipe, label string) *Problem {
	if r.Security.RunAs == "" && !startsPrograms(r) {
		return nil
	}
	root, err := runner.RunsAsRoot(r.Security.RunAs, e.cfg.DefaultRunAs)
	switch {
	case err != nil:
		p := invalid("%s: security.run_as: %s: %v", label, r.Metadata.Name, err)
		return &p
	case root && !e.cfg.AllowRoot:
		p := invalid("%s: security.run_as: %s would run as root (uid 0); set security.run_as in the recipe or "+
			"default_run_as in agent.toml, or allow it with security.allow_root = true", label, r.Metadata.Name)
		return &p
	}
	return nil
}

// startsPrograms tells whether a component runs programs of its own; a
// wasm plugin without an install script runs only inside the agent.
func startsPrograms(r *recipes.Recipe) bool {
	return r.Metadata.Kind == recipes.KindProcess || r.Lifecycle.Install != nil ||
		r.Plugin != nil && r.Plugin.Runtime != plugin.RuntimeWasm
}

// resolveSecrets reads each [secrets] entry from the agent's environment or
// a file. Values are never put in a message.
func resolveSecrets(specs map[string]recipes.Secret, label string) (map[string]string, []Problem) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(specs))
	var probs []Problem
	for _, k := range slices.Sorted(maps.Keys(specs)) {
		sp := specs[k]
		switch sp.From {
		case "env":
			v, ok := os.LookupEnv(sp.Name)
			if !ok {
				probs = append(probs, invalid("%s: secrets.%s: environment variable %s is not set in the agent's environment",
					label, k, sp.Name))
				continue
			}
			out[k] = v
		case "file":
			b, err := os.ReadFile(sp.Path)
			if err != nil {
				probs = append(probs, invalid("%s: secrets.%s: cannot read %s: %v", label, k, sp.Path, unwrapPath(err)))
				continue
			}
			out[k] = strings.TrimRight(string(b), "\r\n")
		default:
			probs = append(probs, invalid("%s: secrets.%s.from: must be env or file", label, k))
		}
	}
	return out, probs
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// configProblems turns CheckConfig's list into problems under where.
func configProblems(err error, where string) []Problem {
	var list recipes.ErrorList
	if !errors.As(err, &list) {
		return []Problem{invalid("%s: %v", where, err)}
	}
	out := make([]Problem, 0, len(list))
	for _, fe := range list {
		out = append(out, invalid("%s: %s: %s", where, fe.Path, fe.Message))
	}
	return out
}
