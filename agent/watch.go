package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"

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
	dir      string
	deploys  *deploy.Engine
	events   events.Publisher
	log      *slog.Logger
	clock    supervisor.Clock
	debounce time.Duration

	// stageIn is where recipes are staged to be parsed (the data folder).
	stageIn string

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
//
// Recipes are parsed from the bytes read here, never from the folder: an
// import can then only name a file read below, and a FIFO or device in the
// folder can never block the watcher (and with it the agent's shutdown).
func (w *watcher) build() (req *deploy.Request, digest string, problems []string) {
	files, digest, problems := w.read()
	if len(problems) > 0 {
		return nil, "", problems
	}
	parsed, problems, err := deploy.ParseRecipes(w.stageIn, files)
	if err != nil {
		return nil, "", []string{fmt.Sprintf("parse the watch folder's recipes: %v", err)}
	}
	if len(problems) > 0 || len(parsed) == 0 {
		return nil, "", problems
	}
	refs := make([]watchRef, 0, len(parsed))
	for name, r := range parsed {
		refs = append(refs, watchRef{Name: r.Metadata.Name, Version: r.Metadata.Version, Recipe: name})
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
	}, digest, nil
}

// read reads every watched regular file of the folder, with the digest of
// their names and content.
func (w *watcher) read() (files map[string][]byte, digest string, problems []string) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, "", []string{fmt.Sprintf("read %s: %v", w.dir, err)}
	}
	files = map[string][]byte{}
	h := sha256.New()
	for _, e := range entries { // sorted by name
		name := e.Name()
		if !e.Type().IsRegular() || !watched(name) {
			continue
		}
		data, err := readRegular(filepath.Join(w.dir, name))
		if errors.Is(err, errNotRegular) {
			continue // replaced since the listing; its own event follows
		}
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		files[name] = data
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	}
	return files, hex.EncodeToString(h.Sum(nil)), problems
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

// errNotRegular is a watched name that is not a regular file once opened.
var errNotRegular = errors.New("not a regular file")

// readRegular reads a regular file of at most maxWatchFile bytes. The
// listing said it was one, but it may have been replaced since: opening
// non-blocking, without following a symbolic link, and checking the type
// of what was opened means a FIFO never blocks the open or the read.
func readRegular(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("%s: removed while reading", path)
	case errors.Is(err, unix.ELOOP):
		return nil, errNotRegular
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	data, err := io.ReadAll(io.LimitReader(f, maxWatchFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxWatchFile {
		return nil, fmt.Errorf("%s: more than the %d bytes a recipe file may have", path, maxWatchFile)
	}
	return data, nil
}
