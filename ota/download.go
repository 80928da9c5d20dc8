package ota

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cavaliergopher/grab/v3"
	"github.com/cenkalti/backoff/v4"
)

// Progress is a snapshot of one download, for progress bars.
type Progress struct {
	URL            string
	BytesComplete  int64   // bytes on disk, resumed ones included
	Size           int64   // total size; -1 while unknown
	BytesPerSecond float64 // recent transfer rate
	Done           bool    // last call for this download (success or not)
}

// ProgressFunc receives progress snapshots. It is called from the
// downloading goroutine and must not block.
type ProgressFunc func(Progress)

// RetryPolicy bounds retries of network errors and 5xx answers.
type RetryPolicy struct {
	// Initial is the first delay. 0 = 500ms.
	Initial time.Duration
	// Max caps one delay. 0 = 30s.
	Max time.Duration
	// MaxElapsed gives up after this long in total. 0 = 10m.
	MaxElapsed time.Duration
	// MaxAttempts caps attempts, the first included. 0 = 8.
	MaxAttempts int
}

// DownloadConfig configures a Downloader. The zero value allows https://
// and file:// with system roots, no size limit and default retries.
type DownloadConfig struct {
	// HTTPClient does the transfers. nil = NewHTTPClient(HTTPClientConfig{}).
	HTTPClient *http.Client
	// AllowHTTP permits plain http:// URLs ([artifacts] allow_http).
	// Integrity still comes from the sha256. false = refused.
	AllowHTTP bool
	// MaxSize refuses artifacts larger than this many bytes. 0 = no limit.
	MaxSize int64
	// Retry bounds retries; the zero value uses its documented defaults.
	Retry RetryPolicy
	// StallTimeout aborts (and retries) an attempt that moved no byte for
	// this long. 0 = 60s.
	StallTimeout time.Duration
	// ProgressInterval is how often progress is reported. 0 = 250ms.
	ProgressInterval time.Duration
	// Logger receives retry notices. nil = discard.
	Logger *slog.Logger
}

// DownloadRequest is one file to fetch.
type DownloadRequest struct {
	// URL is an https://, http:// or file:// URL.
	URL string
	// Dest is where the bytes go. A partial file left there by an earlier
	// attempt is resumed when the server allows ranges.
	Dest string
	// SHA256 is the expected digest, 64 hex characters. Required.
	SHA256 string
	// Size is the exact expected length when known (signed metadata);
	// 0 = unknown.
	Size int64
	// Progress receives snapshots. nil = none.
	Progress ProgressFunc
}

// Downloader fetches files with resume, retry with backoff and a final
// sha256 check, through cavaliergopher/grab. It is safe for concurrent use
// on distinct destinations.
type Downloader struct {
	cfg    DownloadConfig
	client *grab.Client
	log    *slog.Logger
}

// NewDownloader returns a Downloader for cfg.
func NewDownloader(cfg DownloadConfig) (*Downloader, error) {
	if cfg.HTTPClient == nil {
		c, err := NewHTTPClient(HTTPClientConfig{})
		if err != nil {
			return nil, err
		}
		cfg.HTTPClient = c
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = 60 * time.Second
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 250 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gc := &grab.Client{HTTPClient: cfg.HTTPClient, UserAgent: "keystone-agent", BufferSize: 256 << 10}
	return &Downloader{cfg: cfg, client: gc, log: log}, nil
}

// Causes of a failed attempt that the retry loop handles itself.
var (
	errStalled      = errors.New("transfer stalled")
	errRangeIgnored = errors.New("server ignored the resume range")
)

// Download makes req.Dest hold the verified bytes of req.URL. On success the
// file's sha256 (and size, when given) match. Failures are *Error:
// HASH_MISMATCH and DISK_FULL remove the partial file; DOWNLOAD_FAILED keeps
// it so that a later call resumes.
func (d *Downloader) Download(ctx context.Context, req DownloadRequest) (err error) {
	defer func() {
		if req.Progress != nil {
			p := Progress{URL: req.URL, Size: req.Size, Done: true}
			if fi, statErr := os.Stat(req.Dest); statErr == nil {
				p.BytesComplete = fi.Size()
			}
			req.Progress(p)
		}
	}()
	want, err := hex.DecodeString(req.SHA256)
	if err != nil || len(want) != sha256.Size {
		return &Error{Reason: ReasonHashMismatch, Artifact: req.URL, Err: fmt.Errorf("invalid sha256 %q", req.SHA256)}
	}
	if err := d.checkScheme(req.URL); err != nil {
		return &Error{Reason: ReasonDownloadFailed, Artifact: req.URL, Err: err}
	}
	if d.cfg.MaxSize > 0 && req.Size > d.cfg.MaxSize {
		return &Error{Reason: ReasonDownloadFailed, Artifact: req.URL,
			Err: fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, req.Size, d.cfg.MaxSize)}
	}
	if err := os.MkdirAll(filepath.Dir(req.Dest), 0o755); err != nil {
		return fail(classifyLocal(err), req.URL, fmt.Errorf("create download folder: %w", err))
	}

	attempt := 0
	op := func() error {
		attempt++
		err := d.attempt(ctx, req, want)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return backoff.Permanent(&Error{Reason: ReasonDownloadFailed, Artifact: req.URL, Err: ctx.Err()})
		}
		if isPermanent(err) {
			return backoff.Permanent(err)
		}
		return err
	}
	notify := func(err error, wait time.Duration) {
		d.log.Info("download attempt failed, retrying", "url", req.URL, "attempt", attempt, "in", wait, "err", err)
	}
	err = backoff.RetryNotify(op, d.backoff(ctx), notify)
	if err != nil {
		return fail(ReasonDownloadFailed, req.URL, err)
	}
	return nil
}

func (d *Downloader) backoff(ctx context.Context) backoff.BackOff {
	p := d.cfg.Retry
	if p.Initial == 0 {
		p.Initial = 500 * time.Millisecond
	}
	if p.Max == 0 {
		p.Max = 30 * time.Second
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = 10 * time.Minute
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 8
	}
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
	)
	return backoff.WithContext(backoff.WithMaxRetries(b, uint64(p.MaxAttempts-1)), ctx)
}

func (d *Downloader) checkScheme(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse url: %w", err)
	}
	switch u.Scheme {
	case "https", "file":
		return nil
	case "http":
		if d.cfg.AllowHTTP {
			return nil
		}
		return fmt.Errorf("%w: http:// needs artifacts.allow_http = true", ErrSchemeNotAllowed)
	default:
		return fmt.Errorf("%w: %q", ErrSchemeNotAllowed, u.Scheme)
	}
}

// attempt runs one grab transfer. Errors come back either as *Error
// (permanent) or as plain errors worth a retry.
func (d *Downloader) attempt(ctx context.Context, req DownloadRequest, want []byte) error {
	// A partial file longer than the known size can never resume: start over.
	if fi, err := os.Stat(req.Dest); err == nil && req.Size > 0 && fi.Size() > req.Size {
		_ = os.Remove(req.Dest)
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	greq, err := grab.NewRequest(req.Dest, req.URL)
	if err != nil {
		return &Error{Reason: ReasonDownloadFailed, Artifact: req.URL, Err: err}
	}
	greq = greq.WithContext(actx)
	greq.Size = req.Size
	greq.IgnoreRemoteTime = true
	greq.NoCreateDirectories = true
	greq.SetChecksum(sha256.New(), want, true)
	guard := &sizeGuard{limit: d.cfg.MaxSize}
	greq.RateLimiter = guard
	greq.BeforeCopy = func(resp *grab.Response) error {
		if err := checkRange(resp); err != nil {
			return err
		}
		if d.cfg.MaxSize > 0 && resp.Size() > d.cfg.MaxSize {
			return fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, resp.Size(), d.cfg.MaxSize)
		}
		guard.base.Store(resp.BytesComplete())
		return nil
	}

	resp := d.client.Do(greq)
	d.watch(resp, req, cancel)
	err = resp.Err()
	if err == nil {
		return nil
	}
	return d.classify(ctx, actx, req, err)
}

// watch reports progress and cancels the attempt when no byte moved for
// StallTimeout while the body was being copied. It returns when the
// transfer ends.
func (d *Downloader) watch(resp *grab.Response, req DownloadRequest, cancel context.CancelCauseFunc) {
	t := time.NewTicker(d.cfg.ProgressInterval)
	defer t.Stop()
	last, lastMove := resp.BytesComplete(), time.Now()
	for {
		select {
		case <-resp.Done:
			return
		case now := <-t.C:
			n, size := resp.BytesComplete(), resp.Size()
			if req.Progress != nil {
				req.Progress(Progress{URL: req.URL, BytesComplete: n, Size: size, BytesPerSecond: resp.BytesPerSecond()})
			}
			copying := size < 0 || n < size
			switch {
			case n != last || !copying:
				last, lastMove = n, now
			case now.Sub(lastMove) >= d.cfg.StallTimeout:
				cancel(errStalled)
			}
		}
	}
}

func (d *Downloader) classify(ctx, actx context.Context, req DownloadRequest, err error) error {
	removePartial := func() { _ = os.Remove(req.Dest) }
	var status grab.StatusCodeError
	switch {
	case ctx.Err() != nil:
		return &Error{Reason: ReasonDownloadFailed, Artifact: req.URL, Err: ctx.Err()}
	case errors.Is(err, grab.ErrBadChecksum):
		removePartial()
		return &Error{Reason: ReasonHashMismatch, Artifact: req.URL, Err: fmt.Errorf("sha256 of the downloaded bytes is not %s", req.SHA256)}
	case errors.Is(err, grab.ErrBadLength):
		removePartial()
		return &Error{Reason: ReasonHashMismatch, Artifact: req.URL, Err: fmt.Errorf("server length differs from the expected %d bytes", req.Size)}
	case isDiskFull(err):
		removePartial()
		return &Error{Reason: ReasonDiskFull, Artifact: req.URL, Err: err}
	case errors.Is(err, ErrTooLarge):
		removePartial()
		return &Error{Reason: ReasonDownloadFailed, Artifact: req.URL, Err: err}
	case errors.Is(err, errRangeIgnored):
		removePartial()
		return err
	case errors.As(err, &status):
		code := int(status)
		switch {
		case code == http.StatusRequestedRangeNotSatisfiable:
			removePartial()
			return err
		case code >= 500, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
			return err
		default:
			return &Error{Reason: ReasonDownloadFailed, Artifact: req.URL, Err: err}
		}
	case errors.Is(context.Cause(actx), errStalled):
		return fmt.Errorf("%w: no progress for %s", errStalled, d.cfg.StallTimeout)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission), isTLSTrust(err):
		return &Error{Reason: ReasonDownloadFailed, Artifact: req.URL, Err: err}
	default:
		return err // network trouble: retry, resuming what arrived
	}
}

func isPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// isTLSTrust reports a certificate the client does not trust: retrying
// cannot help.
func isTLSTrust(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host)
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// classifyLocal gives the reason for a local file-system failure.
func classifyLocal(err error) Reason {
	if isDiskFull(err) {
		return ReasonDiskFull
	}
	return ReasonDownloadFailed
}

// checkRange refuses a resumed transfer whose answer does not continue the
// partial file exactly (grab does not check Content-Range).
func checkRange(resp *grab.Response) error {
	if resp.Request.HTTPRequest.Header.Get("Range") == "" || resp.HTTPResponse == nil {
		return nil
	}
	start := resp.BytesComplete()
	if resp.HTTPResponse.StatusCode != http.StatusPartialContent ||
		!strings.HasPrefix(resp.HTTPResponse.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", start)) {
		return fmt.Errorf("%w: status %d, Content-Range %q", errRangeIgnored,
			resp.HTTPResponse.StatusCode, resp.HTTPResponse.Header.Get("Content-Range"))
	}
	return nil
}

// sizeGuard is grab's per-chunk hook, used to stop a body that grows past
// the size limit when the server did not announce its length.
type sizeGuard struct {
	limit int64
	base  atomic.Int64
	n     atomic.Int64
}

// WaitN counts n more bytes and fails once the total passes the limit.
func (g *sizeGuard) WaitN(_ context.Context, n int) error {
	if g.limit <= 0 {
		return nil
	}
	if g.base.Load()+g.n.Add(int64(n)) > g.limit {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, g.limit)
	}
	return nil
}
