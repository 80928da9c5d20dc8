package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/pelletier/go-toml/v2"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Watch folder settings.
const (
	// watchDebounce is how long the folder must be quiet before it is
	// applied: an editor's save is often several writes and a rename.
	watchDebounce = 300 * time.Millisecond
	// RecipeSuffix marks the recipes of a watch folder; other .toml files
	// there are files the recipes import.
	RecipeSuffix = ".recipe.toml"
	// watchManifestName is the name the generated manifest has in errors.
	watchManifestName = "watch-folder.deployment.toml"
	// maxWatchFile bounds one file read from the folder.
	maxWatchFile = 4 << 20
	// maxWarnings bounds the warning events of one failed apply.
	maxWarnings = 20
)

// watcher is development hot reload ([dev] watch_dir): it applies the folder
// as one deployment at start and again whenever a recipe, an imported file
// or a signature in it changes, once the folder has been quiet for
// watchDebounce. Each *.recipe.toml is a root component at its own version.
//
// A folder with a broken recipe is not applied: the problems become warning
// events and log lines and whatever runs keeps running. Signatures are
// checked by the engine as for any local deployment. An unchanged folder is
// not applied twice.
type watcher struct {
	dir     string
	deploys interface {
		Submit(context.Context, deploy.Request) (api.DeploymentAccepted, error)
	}
	events   events.Publisher
	log      *slog.Logger
	clock    supervisor.Clock
	debounce time.Duration

	lastApplied string // digest of the folder last submitted
}

// run watches until ctx ends. The folder must exist.
func (w *watcher) run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", w.dir, err)
	}
	defer fw.Close()
	if err := fw.Add(w.dir); err != nil {
		return fmt.Errorf("watch %s: %w", w.dir, err)
	}
	w.log.Info("watching recipe folder", "dir", w.dir)
	w.apply(ctx)

	fire := make(chan struct{}, 1)
	var timer supervisor.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if !watched(ev.Name) {
				continue
			}
			w.log.Debug("watch folder changed", "file", ev.Name, "op", ev.Op.String())
			if timer != nil {
				timer.Stop()
			}
			timer = w.clock.AfterFunc(w.debounce, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("watch folder", "dir", w.dir, "err", err)
		case <-fire:
			w.apply(ctx)
		}
	}
}

// watched says whether a change to name matters: recipes and the files they
// import (.toml) and signatures (.sig); editors' temporary files do not.
func watched(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") {
		return false
	}
	return strings.HasSuffix(base, ".toml") || strings.HasSuffix(base, sign.SigSuffix)
}

// apply submits the folder as a deployment, or reports why it cannot.
func (w *watcher) apply(ctx context.Context) {
	req, digest, problems := w.build()
	if len(problems) > 0 {
		w.warn(problems)
		return
	}
	if req == nil {
		w.log.Info("watch folder has no recipes; nothing applied", "dir", w.dir)
		return
	}
	if digest == w.lastApplied {
		w.log.Debug("watch folder unchanged since last applied", "dir", w.dir)
		return
	}
	acc, err := w.deploys.Submit(ctx, *req)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		var pl problemLister
		if errors.As(err, &pl) {
			w.warn(pl.Messages())
		} else {
			w.warn([]string{err.Error()})
		}
		return
	}
	w.lastApplied = digest
	w.log.Info("applied watch folder", "dir", w.dir, "deployment", acc.ID)
}

// warn reports problems that kept the folder from being applied.
func (w *watcher) warn(problems []string) {
	w.log.Warn("watch folder not applied; what runs is left as it is",
		"dir", w.dir, "problems", problems)
	for i, p := range problems {
		if i == maxWarnings {
			p = fmt.Sprintf("and %d more problems", len(problems)-i)
		}
		w.events.Publish(events.Event{
			Kind:   events.KindWarning,
			Reason: "watch folder not applied: " + p,
			Detail: map[string]string{"source": "watch", "dir": w.dir},
		})
		if i == maxWarnings {
			break
		}
	}
}

// build reads the folder into a deployment request: a manifest naming every
// *.recipe.toml as a root at its own version, and every .toml and .sig file
// sent along. digest identifies the folder's content. A nil request with no
// problems means there is no recipe.
func (w *watcher) build() (req *deploy.Request, digest string, problems []string) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, "", []string{fmt.Sprintf("read %s: %v", w.dir, err)}
	}
	files := map[string][]byte{}
	var refs []watchRef
	h := sha256.New()
	for _, e := range entries { // sorted by name
		name := e.Name()
		if !e.Type().IsRegular() || !watched(name) {
			continue
		}
		path := filepath.Join(w.dir, name)
		data, err := readBounded(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		files[name] = data
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
		if !strings.HasSuffix(name, RecipeSuffix) {
			continue
		}
		r, err := recipes.ParseRecipe(path, data)
		if err != nil {
			problems = append(problems, splitProblems(err)...)
			continue
		}
		refs = append(refs, watchRef{Name: r.Metadata.Name, Version: r.Metadata.Version, Recipe: name})
	}
	if len(problems) > 0 || len(refs) == 0 {
		return nil, "", problems
	}
	slices.SortFunc(refs, func(a, b watchRef) int { return strings.Compare(a.Name, b.Name) })
	m := watchManifest{Format: 1, Components: refs}
	m.Deployment.FailurePolicy = string(recipes.FailureRollback)
	text, err := toml.Marshal(m)
	if err != nil {
		return nil, "", []string{fmt.Sprintf("write the watch folder's manifest: %v", err)}
	}
	return &deploy.Request{
		Manifest:     text,
		ManifestName: filepath.Join(w.dir, watchManifestName),
		Files:        files,
		Origin:       "watch",
	}, hex.EncodeToString(h.Sum(nil)), nil
}

// watchManifest is the manifest a watch folder becomes.
type watchManifest struct {
	Format     int `toml:"format"`
	Deployment struct {
		FailurePolicy string `toml:"failure_policy"`
	} `toml:"deployment"`
	Components []watchRef `toml:"components"`
}

type watchRef struct {
	Name    string `toml:"name"`
	Version string `toml:"version"`
	Recipe  string `toml:"recipe"`
}

func readBounded(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxWatchFile {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a recipe file may have", path, fi.Size(), maxWatchFile)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: removed while reading", path)
	}
	return data, err
}

// splitProblems lists each problem of a recipe parse error.
func splitProblems(err error) []string {
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		var out []string
		for _, e := range multi.Unwrap() {
			out = append(out, e.Error())
		}
		if len(out) > 0 {
			return out
		}
	}
	return []string{err.Error()}
}
