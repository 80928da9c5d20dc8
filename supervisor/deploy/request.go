package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keystone-edge/keystone/ota"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/recipes"
)

// Request is a deployment as it arrives: a manifest and the files it refers
// to.
type Request struct {
	// Manifest is the deployment manifest's TOML text. Required.
	Manifest []byte
	// ManifestName names the manifest in error messages; "" means
	// "deployment.toml".
	ManifestName string
	// Files holds the recipes the manifest refers to, by the path the
	// manifest uses (relative to the manifest), the files they import, and
	// each one's detached signature under the same path plus ".sig". Other
	// *.recipe.toml files are offered as dependencies. nil means none (every
	// component then comes from the repository or the current set).
	Files map[string][]byte
	// Preempt cancels the running deployment (it rolls back) and every
	// queued one instead of waiting behind them.
	Preempt bool
	// Origin says where the request came from ("local", "watch", "mqtt"),
	// for logs and events; "" means "local".
	Origin string
	// ID, when set, is the deployment's id whatever the manifest says (an
	// MQTT job's id, so that a job and its deployment are one thing).
	ID string
}

// recipeSuffix marks the files of a request that are offered as recipes.
const recipeSuffix = ".recipe.toml"

// parseManifest waits for Started, then parses the request's manifest.
func (e *Engine) parseManifest(ctx context.Context, req Request) (*recipes.Manifest, error) {
	if err := e.awaitStart(ctx); err != nil {
		return nil, err
	}
	name := cmp.Or(req.ManifestName, "deployment.toml")
	if len(req.Manifest) == 0 {
		return nil, &ValidationError{Problems: []Problem{invalid("%s: the manifest is empty", name)}}
	}
	m, err := recipes.ParseManifest(name, req.Manifest)
	if err != nil {
		return nil, &ValidationError{Problems: listProblems(err, "", name)}
	}
	if req.ID != "" {
		m.Deployment.ID = req.ID
	}
	return m, nil
}

// prepare validates a request completely and builds its set: every recipe
// parsed (imports among the request's files), every signature checked,
// components without a local recipe resolved from the repository, the graph
// resolved over the request's recipes and the current set's, every recipe
// rendered. It changes nothing; any problem makes it return a
// *ValidationError listing all of them.
func (e *Engine) prepare(ctx context.Context, req Request, m *recipes.Manifest, id string, current *set) (*set, error) {
	if err := CheckFileNames(req.Files); err != nil {
		return nil, err
	}
	st, err := stageFiles(e.cfg.StagingDir, req.Files)
	if err != nil {
		// Logged with its path, answered without: the sender, maybe an API
		// client, has no business knowing the device's layout.
		e.log.Error("stage a deployment's files", "parent", e.cfg.StagingDir, "err", err)
		return nil, fmt.Errorf("stage the deployment's files: %w", withoutPath(err))
	}
	defer st.remove(e.log)

	available, labels, probs := e.requestRecipes(ctx, st, m, req.Files)
	if len(probs) > 0 {
		return nil, &ValidationError{Problems: probs}
	}
	// A dependency nobody sent may be satisfied by what is installed.
	offered := map[string]bool{}
	for _, r := range available {
		offered[r.Metadata.Name+"@"+r.Metadata.Version] = true
	}
	for _, r := range current.recipeList() {
		if !offered[r.Metadata.Name+"@"+r.Metadata.Version] {
			available = append(available, r)
		}
	}
	s, ps := e.buildSet(id, m, string(req.Manifest), available, labels, admitNew)
	if len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	return s, nil
}

// requestRecipes parses the recipes a request offers: each the manifest
// names (from the request's files, or from the repository when it names
// none) and every other *.recipe.toml sent. labels maps a component to the
// file its recipe came from, for messages.
func (e *Engine) requestRecipes(ctx context.Context, st *staging, m *recipes.Manifest, files map[string][]byte) (
	available []*recipes.Recipe, labels map[string]string, probs []Problem) {
	labels = map[string]string{}
	used := map[string]bool{}
	for i, ref := range m.Components {
		if ref.Recipe == "" {
			r, ps := e.fromRepository(ctx, st.repo, ref)
			probs = append(probs, ps...)
			if r != nil {
				available = append(available, r)
			}
			continue
		}
		rel := path.Clean(ref.Recipe)
		used[rel] = true
		if _, ok := files[rel]; !ok {
			probs = append(probs, invalid("%s: components[%d].recipe: %s was not sent with the manifest", m.Source, i, ref.Recipe))
			continue
		}
		r, ps := e.localRecipe(st.files, rel, files)
		probs = append(probs, ps...)
		if r == nil {
			continue
		}
		if r.Metadata.Name != ref.Name || r.Metadata.Version != ref.Version {
			probs = append(probs, invalid("%s: components[%d]: lists %s@%s but %s is %s@%s", m.Source, i,
				ref.Name, ref.Version, rel, r.Metadata.Name, r.Metadata.Version))
			continue
		}
		labels[r.Metadata.Name] = rel
		available = append(available, r)
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if used[rel] || !strings.HasSuffix(rel, recipeSuffix) {
			continue
		}
		r, ps := e.localRecipe(st.files, rel, files)
		probs = append(probs, ps...)
		if r != nil {
			if _, ok := labels[r.Metadata.Name]; !ok {
				labels[r.Metadata.Name] = rel
			}
			available = append(available, r)
		}
	}
	return available, labels, probs
}

// localRecipe parses a recipe the request sent and checks the signatures
// of it and of every file it imports.
func (e *Engine) localRecipe(dir, rel string, files map[string][]byte) (*recipes.Recipe, []Problem) {
	r, err := recipes.ParseRecipe(filepath.Join(dir, filepath.FromSlash(rel)), files[rel])
	if err != nil {
		return nil, listProblems(err, dir, rel)
	}
	if e.cfg.AllowUnsigned {
		return r, nil
	}
	signed := []string{rel}
	for _, imp := range r.ImportedFiles {
		signed = append(signed, relabel(imp, dir, imp))
	}
	var probs []Problem
	for _, f := range signed {
		if p := e.checkSignature(f, files); p != nil {
			probs = append(probs, *p)
		}
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return r, nil
}

// checkSignature checks rel's detached signature against the trusted keys.
func (e *Engine) checkSignature(rel string, files map[string][]byte) *Problem {
	sig, ok := files[rel+".sig"]
	if !ok {
		return &Problem{Code: Code(ota.ReasonSignatureInvalid), Message: fmt.Sprintf(
			"%s: not signed: %s.sig was not sent (trust.allow_unsigned = true runs unsigned recipes, for development only)", rel, rel)}
	}
	if _, err := e.cfg.Keyring.VerifyDetached(files[rel], sig); err != nil {
		why := "it was changed after it was signed, or signed with a key this agent does not trust (trust.keys)"
		switch {
		case errors.Is(err, sign.ErrNoSignature):
			why = rel + ".sig is empty"
		case errors.Is(err, sign.ErrUnknownKey):
			why = "this agent trusts no key (trust.keys)"
		}
		return &Problem{Code: Code(ota.ReasonSignatureInvalid), Message: fmt.Sprintf(
			"%s: the signature in %s.sig does not match the file under any trusted key (%s): %s",
			rel, rel, strings.Join(e.cfg.Keyring.KeyIDs(), ", "), why)}
	}
	return nil
}

// fromRepository resolves a component the manifest gives no recipe for.
func (e *Engine) fromRepository(ctx context.Context, repoDir string, ref recipes.ComponentRef) (*recipes.Recipe, []Problem) {
	label := ref.Name + "@" + ref.Version
	if e.cfg.Repository == nil {
		return nil, []Problem{invalid("%s: no recipe given and no component repository configured (trust.repository)", label)}
	}
	res, err := e.cfg.Repository.Resolve(ctx, ref.Name, ref.Version)
	if err != nil {
		code := Code(ota.ReasonDownloadFailed)
		if reason, ok := ota.ReasonOf(err); ok {
			code = Code(reason)
		}
		return nil, []Problem{{Code: code, Message: fmt.Sprintf("%s: from the repository: %v", label, err)}}
	}
	// Parsed in an empty folder of its own, apart from the request's files:
	// a repository recipe cannot import files (nothing signs them).
	r, err := recipes.ParseRecipe(filepath.Join(repoDir, label+recipeSuffix), res.Recipe)
	if err != nil {
		return nil, listProblems(err, repoDir, label+recipeSuffix)
	}
	if r.Metadata.Name != ref.Name || r.Metadata.Version != ref.Version {
		return nil, []Problem{invalid("%s: the repository's recipe is %s@%s", label, r.Metadata.Name, r.Metadata.Version)}
	}
	return r, nil
}
