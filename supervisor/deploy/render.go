package deploy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor"
)

// render makes the component the supervisor runs from a parsed recipe:
// configuration merged (recipe defaults < device config < deployment
// overrides), every ${…} resolved, secrets read, and the agent's policy
// checked (run_as root only with security.allow_root). The rendered recipe
// drops Source, Raw and ImportedFiles, so that only what the component runs
// decides whether the supervisor replaces it.
func (e *Engine) render(r *recipes.Recipe, overrides map[string]any, label string) (*supervisor.Component, []Problem) {
	name, version := r.Metadata.Name, r.Metadata.Version
	vdir := e.cfg.Fetcher.VersionDir(name, version)
	wdir := e.cfg.Paths.WorkDir(name)
	var probs []Problem
	if err := r.CheckConfig(e.cfg.DeviceConfig[name]); err != nil {
		probs = append(probs, configProblems(err, fmt.Sprintf("agent.toml: components.%q.config", name))...)
	}
	if err := r.CheckConfig(overrides); err != nil {
		probs = append(probs, configProblems(err, fmt.Sprintf("deployment: config of %s", name))...)
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
	if user := runAsUser(out.Security.RunAs, e.cfg.DefaultRunAs); (user == "root" || user == "0") && !e.cfg.AllowRoot {
		probs = append(probs, Problem{Code: CodeValidation, Message: fmt.Sprintf(
			"%s: security.run_as: %s would run as root; allowed only with security.allow_root = true in agent.toml", label, name)})
	}
	secrets, sp := resolveSecrets(out.Secrets, label)
	probs = append(probs, sp...)
	if len(probs) > 0 {
		return nil, probs
	}
	return &supervisor.Component{Recipe: out, VersionDir: vdir, WorkDir: wdir, Secrets: secrets, Config: config}, nil
}

// runAsUser is the user part of the run_as that applies.
func runAsUser(runAs, defaultRunAs string) string {
	if runAs == "" {
		runAs = defaultRunAs
	}
	user, _, _ := strings.Cut(runAs, ":")
	return user
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
				probs = append(probs, Problem{Code: CodeValidation, Message: fmt.Sprintf(
					"%s: secrets.%s: environment variable %s is not set in the agent's environment", label, k, sp.Name)})
				continue
			}
			out[k] = v
		case "file":
			b, err := os.ReadFile(sp.Path)
			if err != nil {
				probs = append(probs, Problem{Code: CodeValidation, Message: fmt.Sprintf(
					"%s: secrets.%s: cannot read %s: %v", label, k, sp.Path, unwrapPath(err))})
				continue
			}
			out[k] = strings.TrimRight(string(b), "\r\n")
		default:
			probs = append(probs, Problem{Code: CodeValidation, Message: fmt.Sprintf(
				"%s: secrets.%s.from: must be env or file", label, k)})
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
		return []Problem{{Code: CodeValidation, Message: where + ": " + err.Error()}}
	}
	out := make([]Problem, 0, len(list))
	for _, fe := range list {
		out = append(out, Problem{Code: CodeValidation, Message: fmt.Sprintf("%s: %s: %s", where, fe.Path, fe.Message)})
	}
	return out
}
