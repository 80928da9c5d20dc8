package ota

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// RepositoryConfig says where the component repository is and what to trust.
type RepositoryConfig struct {
	// RootFile is the trust anchor, the repository's root.json
	// (trust.tuf_root). Required.
	RootFile string
	// URL is the base URL of the served repository folder
	// (trust.repository); targets are under URL/targets/. Required.
	URL string
	// CacheDir keeps the metadata this device has trusted, which is what
	// defeats rollback (data_dir/tuf). Required.
	CacheDir string
	// HTTPClient fetches metadata. nil = NewHTTPClient(HTTPClientConfig{}).
	HTTPClient *http.Client
	// AllowHTTP permits a plain http:// URL. false = https:// or file:// only.
	AllowHTTP bool
	// RequestTimeout bounds one metadata request. 0 = 60s.
	RequestTimeout time.Duration
	// Downloader fetches agent releases (FetchRelease) with resume and
	// retries. nil = one on HTTPClient, with AllowHTTP and no size limit
	// of its own.
	Downloader *Downloader
	// MaxReleaseSize caps an agent release: the signed length of its
	// archive, and its files together once unpacked. 0 =
	// tufrepo.MaxReleaseBytes.
	MaxReleaseSize int64
}

// Repository is the device side of the component repository: a go-tuf
// updater that resolves component versions to their recipe and artifacts,
// and agent releases to installed files (FetchRelease), every byte checked
// against signed targets metadata. Each call refreshes
// the metadata once with a fresh updater (go-tuf allows one Refresh per
// updater); calls are serialized by the caller or run on distinct
// CacheDirs.
type Repository struct {
	cfg        RepositoryConfig
	root       []byte
	downloader *Downloader
}

// Target is one file listed in signed targets metadata.
type Target struct {
	Path   string // target path, e.g. com.example.hello/1.2.0/hello.tar.gz
	Length int64  // exact length in bytes
	SHA256 string // lowercase hex
	URL    string // where its bytes are served (hash-prefixed name)
}

// Resolved is a component version as the repository signs it.
type Resolved struct {
	Name, Version string
	// Recipe holds the recipe's exact bytes, verified against the targets
	// metadata (the signature that covers it).
	Recipe []byte
	// Targets lists every target of the version, the recipe included, by path.
	Targets map[string]Target
}

// NewRepository reads the trust anchor and checks the configuration.
func NewRepository(cfg RepositoryConfig) (*Repository, error) {
	if cfg.RootFile == "" || cfg.URL == "" || cfg.CacheDir == "" {
		return nil, errors.New("repository: RootFile, URL and CacheDir are required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("repository url: %w", err)
	}
	switch u.Scheme {
	case "https", "file":
	case "http":
		if !cfg.AllowHTTP {
			return nil, fmt.Errorf("repository url %s: %w: http:// needs artifacts.allow_http = true", cfg.URL, ErrSchemeNotAllowed)
		}
	default:
		return nil, fmt.Errorf("repository url %s: %w", cfg.URL, ErrSchemeNotAllowed)
	}
	root, err := os.ReadFile(cfg.RootFile)
	if err != nil {
		return nil, fmt.Errorf("read trust root: %w", err)
	}
	if cfg.HTTPClient == nil {
		if cfg.HTTPClient, err = NewHTTPClient(HTTPClientConfig{}); err != nil {
			return nil, err
		}
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	d := cfg.Downloader
	if d == nil {
		if d, err = NewDownloader(DownloadConfig{HTTPClient: cfg.HTTPClient, AllowHTTP: cfg.AllowHTTP}); err != nil {
			return nil, err
		}
	}
	return &Repository{cfg: cfg, root: root, downloader: d}, nil
}

// Resolve refreshes the metadata and returns name@version: its recipe bytes,
// verified, and every target listed under <name>/<version>/. Failures are
// *Error with SIGNATURE_INVALID, METADATA_EXPIRED, ROLLBACK_ATTACK,
// HASH_MISMATCH or DOWNLOAD_FAILED.
func (r *Repository) Resolve(ctx context.Context, name, version string) (*Resolved, error) {
	what := name + "@" + version
	up, err := r.refresh(ctx)
	if err != nil {
		return nil, fail(tufReason(err), what, fmt.Errorf("refresh repository metadata: %w", err))
	}
	recipePath := tufrepo.RecipeTarget(name, version)
	tf, err := up.GetTargetInfo(recipePath)
	if err != nil {
		return nil, fail(tufReason(err), what, lookupErr(recipePath, err))
	}
	_, data, err := up.DownloadTarget(tf, filepath.Join(r.targetsCache(), url.PathEscape(recipePath)), "")
	if err != nil {
		return nil, fail(tufReason(err), recipePath, fmt.Errorf("download recipe: %w", err))
	}
	res := &Resolved{Name: name, Version: version, Recipe: data, Targets: map[string]Target{}}
	prefix := path.Join(name, version) + "/"
	for p, t := range up.GetTopLevelTargets() {
		if strings.HasPrefix(p, prefix) {
			res.Targets[p] = r.target(p, t)
		}
	}
	return res, nil
}

// Targets refreshes the metadata once and returns the signed facts about
// each path. A path not listed fails DOWNLOAD_FAILED wrapping ErrNoTarget.
func (r *Repository) Targets(ctx context.Context, paths ...string) (map[string]Target, error) {
	up, err := r.refresh(ctx)
	if err != nil {
		return nil, fail(tufReason(err), "", fmt.Errorf("refresh repository metadata: %w", err))
	}
	out := make(map[string]Target, len(paths))
	for _, p := range paths {
		tf, err := up.GetTargetInfo(p)
		if err != nil {
			return nil, fail(tufReason(err), p, lookupErr(p, err))
		}
		out[p] = r.target(p, tf)
	}
	return out, nil
}

func (r *Repository) target(p string, tf *metadata.TargetFiles) Target {
	sum := hex.EncodeToString(tf.Hashes["sha256"])
	dir, base := path.Split(p)
	return Target{Path: p, Length: tf.Length, SHA256: sum, URL: r.cfg.URL + "/targets/" + dir + sum + "." + base}
}

func (r *Repository) metadataCache() string { return filepath.Join(r.cfg.CacheDir, "metadata") }
func (r *Repository) targetsCache() string  { return filepath.Join(r.cfg.CacheDir, "targets") }

// refresh builds a fresh updater, starting from the newest root this device
// already verified, and runs its one Refresh.
func (r *Repository) refresh(ctx context.Context) (*updater.Updater, error) {
	root := r.root
	if cached, err := os.ReadFile(filepath.Join(r.metadataCache(), "root.json")); err == nil && newerRoot(cached, r.root) {
		root = cached
	}
	cfg, err := config.New(r.cfg.URL, root)
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = r.metadataCache()
	cfg.LocalTargetsDir = r.targetsCache()
	cfg.Fetcher = &tufFetcher{ctx: ctx, client: r.cfg.HTTPClient, timeout: r.cfg.RequestTimeout}
	up, err := updater.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := up.Refresh(); err != nil {
		return nil, err
	}
	return up, nil
}

// lookupErr wraps a failed target lookup; go-tuf reports an unlisted
// target only by message.
func lookupErr(p string, err error) error {
	if strings.Contains(err.Error(), "not found") {
		return fmt.Errorf("%w: %s", ErrNoTarget, p)
	}
	return fmt.Errorf("look up target %s: %w", p, err)
}

// newerRoot reports whether cached is root metadata of a higher version than
// anchor. The cached copy was verified by go-tuf before it was written.
func newerRoot(cached, anchor []byte) bool {
	c, err := metadata.Root().FromBytes(cached)
	if err != nil {
		return false
	}
	a, err := metadata.Root().FromBytes(anchor)
	if err != nil {
		return false
	}
	return c.Signed.Version > a.Signed.Version
}

// tufReason maps go-tuf's error types onto ours.
func tufReason(err error) Reason {
	switch {
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		return ReasonSignatureInvalid
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return ReasonMetadataExpired
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		return ReasonRollbackAttack
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}), errors.Is(err, &metadata.ErrDownloadLengthMismatch{}):
		return ReasonHashMismatch
	case errors.Is(err, &metadata.ErrRepository{}):
		return ReasonSignatureInvalid // metadata the trusted keys do not vouch for
	case isDiskFull(err):
		return ReasonDiskFull
	default:
		return ReasonDownloadFailed
	}
}

// tufFetcher is go-tuf's fetcher.Fetcher on our private client, bound to the
// caller's context, with a few retries of network errors and 5xx.
type tufFetcher struct {
	ctx     context.Context
	client  *http.Client
	timeout time.Duration
}

// DownloadFile fetches at most maxLength bytes of url.
func (f *tufFetcher) DownloadFile(u string, maxLength int64, _ time.Duration) ([]byte, error) {
	b := backoff.WithContext(backoff.WithMaxRetries(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond), backoff.WithMaxInterval(2*time.Second)), 2), f.ctx)
	return backoff.RetryWithData(func() ([]byte, error) {
		data, err := f.once(u, maxLength)
		var status *metadata.ErrDownloadHTTP
		switch {
		case err == nil:
			return data, nil
		case errors.As(err, &status) && status.StatusCode >= 500:
			return nil, err
		case errors.As(err, &status), errors.Is(err, &metadata.ErrDownloadLengthMismatch{}), f.ctx.Err() != nil, isTLSTrust(err):
			return nil, backoff.Permanent(err)
		default:
			return nil, err
		}
	}, b)
}

func (f *tufFetcher) once(u string, maxLength int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: u}
	}
	if resp.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, more than the %d expected", u, resp.ContentLength, maxLength)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is more than the %d bytes expected", u, maxLength)}
	}
	return data, nil
}
