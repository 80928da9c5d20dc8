package ota

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
)

// Config is what the agent knows from agent.toml to build the ota parts.
type Config struct {
	// DataDir is data_dir: artifacts/, components/ and tuf/ live in it. Required.
	DataDir string
	// Index is the store's artifact index (*store.Store). Required.
	Index ArtifactIndex
	// CacheLimit is [artifacts] cache_limit in bytes. 0 = no limit.
	CacheLimit int64
	// AllowHTTP is [artifacts] allow_http.
	AllowHTTP bool
	// CAFile is [artifacts] ca_file. "" = system roots only.
	CAFile string
	// TUFRoot is trust.tuf_root. "" = no component repository: repo: URIs
	// and repository recipes fail.
	TUFRoot string
	// RepositoryURL is trust.repository; required when TUFRoot is set.
	RepositoryURL string
	// MaxArtifactSize refuses larger downloads. 0 = no limit.
	MaxArtifactSize int64
	// Unpack bounds archives; the zero value uses UnpackLimits' defaults.
	Unpack UnpackLimits
	// Logger receives retries and recovery notes. nil = discard.
	Logger *slog.Logger
}

// New builds the Fetcher (with its cache, opened and reconciled, and its
// downloader) and, when TUFRoot is set, the Repository it uses, all sharing
// one private HTTP client.
func New(ctx context.Context, cfg Config) (*Fetcher, *Repository, error) {
	if cfg.DataDir == "" {
		return nil, nil, fmt.Errorf("ota: DataDir is required")
	}
	hc, err := NewHTTPClient(HTTPClientConfig{CAFile: cfg.CAFile})
	if err != nil {
		return nil, nil, fmt.Errorf("ota: %w", err)
	}
	cache, err := OpenCache(ctx, CacheConfig{Dir: filepath.Join(cfg.DataDir, "artifacts"), Index: cfg.Index, Limit: cfg.CacheLimit, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, err
	}
	d, err := NewDownloader(DownloadConfig{HTTPClient: hc, AllowHTTP: cfg.AllowHTTP, MaxSize: cfg.MaxArtifactSize, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, err
	}
	var repo *Repository
	if cfg.TUFRoot != "" {
		repo, err = NewRepository(RepositoryConfig{RootFile: cfg.TUFRoot, URL: cfg.RepositoryURL,
			CacheDir: filepath.Join(cfg.DataDir, "tuf"), HTTPClient: hc, AllowHTTP: cfg.AllowHTTP, Downloader: d})
		if err != nil {
			return nil, nil, fmt.Errorf("ota: %w", err)
		}
	}
	f, err := NewFetcher(FetcherConfig{Cache: cache, Downloader: d, Repository: repo,
		ComponentsDir: filepath.Join(cfg.DataDir, "components"), Unpack: cfg.Unpack, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, err
	}
	return f, repo, nil
}
