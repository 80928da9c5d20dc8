package ota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/keystone-edge/keystone/recipes"
)

// FetcherConfig wires a Fetcher.
type FetcherConfig struct {
	// Cache holds verified artifacts. Required.
	Cache *Cache
	// Downloader fetches https://, http:// and file:// URLs. Required.
	Downloader *Downloader
	// Repository resolves repo:<target> URIs. nil = such URIs fail
	// DOWNLOAD_FAILED wrapping ErrSchemeNotAllowed.
	Repository *Repository
	// ComponentsDir is data_dir/components, where versions are placed.
	// Required.
	ComponentsDir string
	// Unpack bounds archives; the zero value uses UnpackLimits' defaults.
	Unpack UnpackLimits
	// Logger receives progress notes. nil = discard.
	Logger *slog.Logger
}

// Fetcher is what the deployment engine asks, before it touches anything
// running, to make every artifact of a set of resolved recipes present,
// verified and placed in its version folder. Its methods are safe for
// concurrent use; they run one at a time.
type Fetcher struct {
	cfg FetcherConfig
	log *slog.Logger
	mu  sync.Mutex
}

// NewFetcher checks cfg and returns a Fetcher.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if cfg.Cache == nil || cfg.Downloader == nil || cfg.ComponentsDir == "" {
		return nil, errors.New("new fetcher: Cache, Downloader and ComponentsDir are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{cfg: cfg, log: log}, nil
}

// Fetch makes every artifact of rs present in the cache with its sha256
// checked (downloading what is missing, resuming partial files), then
// places each recipe's version folder (VersionDir) if it is not there yet:
// archives unpacked, other files copied, through a temporary folder and a
// rename. It never touches a folder of a version already placed, so
// nothing running changes. Failures are *Error with DOWNLOAD_FAILED,
// HASH_MISMATCH, SIGNATURE_INVALID, METADATA_EXPIRED, ROLLBACK_ATTACK,
// UNSAFE_ARCHIVE or DISK_FULL; a failed download leaves no file under a
// final cache name.
func (f *Fetcher) Fetch(ctx context.Context, rs []*recipes.Recipe, progress ProgressFunc) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.download(ctx, rs, progress); err != nil {
		return err
	}
	for _, r := range rs {
		if err := f.place(ctx, r); err != nil {
			return fmt.Errorf("place %s@%s: %w", r.Metadata.Name, r.Metadata.Version, err)
		}
	}
	return nil
}

// Verify re-hashes the cached artifacts of rs, as after a restart before a
// checkpointed deployment goes on. A changed file is removed and fails
// HASH_MISMATCH; a missing one fails DOWNLOAD_FAILED (Fetch gets it again).
func (f *Fetcher) Verify(ctx context.Context, rs []*recipes.Recipe) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range uniqueArtifacts(rs) {
		if !f.cfg.Cache.Has(a.SHA256) {
			return &Error{Reason: ReasonDownloadFailed, Artifact: a.URI, Err: errors.New("not in the artifact cache")}
		}
		if err := f.cfg.Cache.verify(ctx, a.SHA256); err != nil {
			return fail(ReasonHashMismatch, a.URI, err)
		}
	}
	return nil
}

// GC shrinks the cache within its limit, keeping every artifact of the
// recipes in keep (installed versions and the keep_versions previous ones).
func (f *Fetcher) GC(ctx context.Context, keep []*recipes.Recipe) (GCResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	needed := map[string]bool{}
	for _, a := range uniqueArtifacts(keep) {
		needed[a.SHA256] = true
	}
	return f.cfg.Cache.GC(ctx, needed)
}

// uniqueArtifacts lists the artifacts of rs once per sha256, sorted.
func uniqueArtifacts(rs []*recipes.Recipe) []recipes.Artifact {
	seen := map[string]recipes.Artifact{}
	for _, r := range rs {
		for _, a := range r.Artifacts {
			a.SHA256 = strings.ToLower(a.SHA256)
			if _, ok := seen[a.SHA256]; !ok {
				seen[a.SHA256] = a
			}
		}
	}
	out := make([]recipes.Artifact, 0, len(seen))
	for _, a := range seen {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SHA256 < out[j].SHA256 })
	return out
}

func (f *Fetcher) download(ctx context.Context, rs []*recipes.Recipe, progress ProgressFunc) error {
	var missing []recipes.Artifact
	var repoTargets []string
	for _, a := range uniqueArtifacts(rs) {
		if !isSHA256Hex(a.SHA256) {
			return &Error{Reason: ReasonHashMismatch, Artifact: a.URI, Err: fmt.Errorf("invalid sha256 %q", a.SHA256)}
		}
		if f.cfg.Cache.Has(a.SHA256) {
			if err := f.cfg.Cache.Touch(ctx, a.SHA256); err != nil {
				return err
			}
			continue
		}
		missing = append(missing, a)
		if t, ok := strings.CutPrefix(a.URI, "repo:"); ok {
			repoTargets = append(repoTargets, t)
		}
	}
	var targets map[string]Target
	if len(repoTargets) > 0 {
		if f.cfg.Repository == nil {
			return &Error{Reason: ReasonDownloadFailed, Artifact: "repo:" + repoTargets[0],
				Err: fmt.Errorf("%w: no component repository configured (trust.repository)", ErrSchemeNotAllowed)}
		}
		var err error
		if targets, err = f.cfg.Repository.Targets(ctx, repoTargets...); err != nil {
			return err
		}
	}
	for _, a := range missing {
		req := DownloadRequest{URL: a.URI, Dest: f.cfg.Cache.partialPath(a.SHA256), SHA256: a.SHA256, Progress: progress}
		if t, ok := strings.CutPrefix(a.URI, "repo:"); ok {
			tt := targets[t]
			if tt.SHA256 != a.SHA256 {
				return &Error{Reason: ReasonHashMismatch, Artifact: a.URI,
					Err: fmt.Errorf("recipe says sha256 %s, signed targets say %s", a.SHA256, tt.SHA256)}
			}
			req.URL, req.Size = tt.URL, tt.Length
		}
		f.log.Info("downloading artifact", "uri", a.URI, "sha256", a.SHA256)
		if err := f.cfg.Downloader.Download(ctx, req); err != nil {
			return fail(ReasonDownloadFailed, a.URI, err)
		}
		if err := f.cfg.Cache.commit(ctx, a.SHA256); err != nil {
			return fail(ReasonDownloadFailed, a.URI, err)
		}
	}
	return nil
}

// artifactFileName is the name an artifact that is not unpacked gets in
// its version folder: the last element of its URI's path.
func artifactFileName(uri string) (string, error) {
	var p string
	if t, ok := strings.CutPrefix(uri, "repo:"); ok {
		p = t
	} else {
		u, err := url.Parse(uri)
		if err != nil {
			return "", fmt.Errorf("artifact uri %q: %w", uri, err)
		}
		p = u.Path
	}
	name := path.Base(p)
	if name == "." || name == "/" || name == ".." || name == "" {
		return "", fmt.Errorf("artifact uri %q names no file", uri)
	}
	return name, nil
}
