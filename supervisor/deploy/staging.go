package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
)

// stagingPrefix starts the name of a request's staging folder; the engine
// removes those a crash left behind when it starts.
const stagingPrefix = ".deploy-staging-"

// staging is a request's files written to a private temporary folder, so
// that recipes find the files they import by their relative paths (the
// recipe parser reads imports from disk). Repository recipes are parsed in
// repo, an empty folder apart from the request's files, so that nothing a
// request sends can be imported by them.
type staging struct {
	root  string
	files string // the request's files, by their names
	repo  string // always empty
}

// stageFiles creates the staging folder under parent (os.TempDir() when
// "") and writes files into it. On any failure the folder is removed.
func stageFiles(parent string, files map[string][]byte) (st *staging, err error) {
	root, err := os.MkdirTemp(parent, stagingPrefix)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(root)
		}
	}()
	st = &staging{root: root, files: filepath.Join(root, "files"), repo: filepath.Join(root, "repository")}
	for _, d := range []string{st.files, st.repo} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(st.files, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, fmt.Errorf("file %s: %w", strconv.Quote(rel), err)
		}
		if err := os.WriteFile(p, files[rel], 0o600); err != nil {
			return nil, fmt.Errorf("file %s: %w", strconv.Quote(rel), err)
		}
	}
	return st, nil
}

// remove deletes the staging folder; a failure only leaves a folder the
// next start removes.
func (st *staging) remove(log *slog.Logger) {
	if err := os.RemoveAll(st.root); err != nil {
		log.Warn("remove a staging folder", "dir", st.root, "err", err)
	}
}

// withoutPath keeps what failed and why, naming the file by its base name
// instead of the path an *fs.PathError carries; errors.Is still sees the
// cause (a full disk stays ENOSPC).
func withoutPath(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path == "" {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), pe.Path, filepath.Base(pe.Path))
	return &pathlessError{msg: msg, cause: pe.Err}
}

type pathlessError struct {
	msg   string
	cause error
}

func (e *pathlessError) Error() string { return e.msg }
func (e *pathlessError) Unwrap() error { return e.cause }

// ParseRecipes parses every *.recipe.toml among files, as the engine
// would: files are staged in a private folder under parent (os.TempDir()
// when "") and each recipe imports from there, so an import can only ever
// read one of files, never a FIFO, device or other file on disk. The
// folder is removed before it returns. It returns the recipes by file name
// and every problem, with files named by their keys; err is set only when
// staging itself failed.
func ParseRecipes(parent string, files map[string][]byte) (map[string]*recipes.Recipe, []string, error) {
	if err := CheckFileNames(files); err != nil {
		var ve *ValidationError
		errors.As(err, &ve)
		return nil, ve.Messages(), nil
	}
	st, err := stageFiles(parent, files)
	if err != nil {
		return nil, nil, withoutPath(err)
	}
	defer os.RemoveAll(st.root)
	out := map[string]*recipes.Recipe{}
	var problems []string
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(rel, recipeSuffix) {
			continue
		}
		r, err := recipes.ParseRecipe(filepath.Join(st.files, filepath.FromSlash(rel)), files[rel])
		if err != nil {
			for _, p := range listProblems(err, st.files, rel) {
				problems = append(problems, p.Message)
			}
			continue
		}
		out[rel] = r
	}
	return out, problems, nil
}
