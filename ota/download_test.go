package ota

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// payload returns n random bytes and their sha256 in hex.
func payload(t testing.TB, n int) ([]byte, string) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// faultServer serves body at /file; fault, when set, may answer request n
// (1-based, GETs and HEADs alike) itself and return true.
type faultServer struct {
	*httptest.Server
	body   []byte
	n      atomic.Int64
	mu     sync.Mutex
	ranges []string // Range headers of GETs, in order
	gets   int
	fault  func(n int64, w http.ResponseWriter, r *http.Request) bool
}

func newFaultServer(t testing.TB, body []byte, fault func(n int64, w http.ResponseWriter, r *http.Request) bool) *faultServer {
	fs := &faultServer{body: body, fault: fault}
	fs.Server = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *faultServer) serve(w http.ResponseWriter, r *http.Request) {
	n := fs.n.Add(1)
	if r.Method == http.MethodGet {
		fs.mu.Lock()
		fs.gets++
		fs.ranges = append(fs.ranges, r.Header.Get("Range"))
		fs.mu.Unlock()
	}
	if fs.fault != nil && fs.fault(n, w, r) {
		return
	}
	http.ServeContent(w, r, "file", time.Unix(0, 0), bytes.NewReader(fs.body))
}

func (fs *faultServer) stats() (gets int, ranges []string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.gets, append([]string(nil), fs.ranges...)
}

// dropAfter writes the headers of the full body, then only its first half
// bytes, then cuts the connection.
func dropAfter(w http.ResponseWriter, body []byte, half int) {
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body[:half])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

func testDownloader(t testing.TB, cfg DownloadConfig) *Downloader {
	t.Helper()
	cfg.AllowHTTP = true
	if cfg.Retry == (RetryPolicy{}) {
		cfg.Retry = RetryPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	}
	d, err := NewDownloader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func wantReason(t testing.TB, err error, want Reason) *Error {
	t.Helper()
	var oe *Error
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want an *ota.Error with reason %s", err, want)
	}
	if oe.Reason != want {
		t.Fatalf("reason = %s (%v), want %s", oe.Reason, err, want)
	}
	return oe
}

func TestDownloadResumesAfterDropAtHalf(t *testing.T) {
	body, sum := payload(t, 4<<20)
	half := len(body) / 2
	srv := newFaultServer(t, body, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			dropAfter(w, body, half)
		}
		return false
	})
	dest := filepath.Join(t.TempDir(), "partial")
	var last Progress
	var calls atomic.Int64
	err := testDownloader(t, DownloadConfig{}).Download(context.Background(), DownloadRequest{
		URL: srv.URL + "/file", Dest: dest, SHA256: sum,
		Progress: func(p Progress) { calls.Add(1); last = p },
	})
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("downloaded file differs from the served body (err %v)", err)
	}
	gets, ranges := srv.stats()
	if gets != 2 {
		t.Errorf("GET requests = %d, want 2 (the dropped one and one resume)", gets)
	}
	want := "bytes=" + strconv.Itoa(half) + "-"
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != want {
		t.Errorf("Range headers = %q, want [\"\" %q]", ranges, want)
	}
	if calls.Load() == 0 || !last.Done || last.BytesComplete != int64(len(body)) {
		t.Errorf("last progress = %+v after %d calls, want Done with %d bytes", last, calls.Load(), len(body))
	}
}

func TestDownloadGarbageIsHashMismatchAndRemoved(t *testing.T) {
	body, sum := payload(t, 1<<20)
	garbage, _ := payload(t, len(body))
	srv := newFaultServer(t, garbage, nil)
	dest := filepath.Join(t.TempDir(), "partial")
	err := testDownloader(t, DownloadConfig{}).Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: dest, SHA256: sum})
	wantReason(t, err, ReasonHashMismatch)
	if _, statErr := os.Stat(dest); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("partial file still there after HASH_MISMATCH: %v", statErr)
	}
	if gets, _ := srv.stats(); gets != 1 {
		t.Errorf("GET requests = %d, want 1 (a hash mismatch is not retried)", gets)
	}
}

func TestDownloadRetriesServerErrorsNotClientErrors(t *testing.T) {
	body, sum := payload(t, 64<<10)
	t.Run("5xx retried", func(t *testing.T) {
		srv := newFaultServer(t, body, func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if n <= 2 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return true
			}
			return false
		})
		dest := filepath.Join(t.TempDir(), "f")
		if err := testDownloader(t, DownloadConfig{}).Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: dest, SHA256: sum}); err != nil {
			t.Fatalf("Download: %v", err)
		}
		if gets, _ := srv.stats(); gets != 3 {
			t.Errorf("GET requests = %d, want 3", gets)
		}
	})
	t.Run("4xx not retried", func(t *testing.T) {
		srv := newFaultServer(t, body, func(n int64, w http.ResponseWriter, r *http.Request) bool {
			http.NotFound(w, r)
			return true
		})
		err := testDownloader(t, DownloadConfig{}).Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: filepath.Join(t.TempDir(), "f"), SHA256: sum})
		wantReason(t, err, ReasonDownloadFailed)
		if gets, _ := srv.stats(); gets != 1 {
			t.Errorf("GET requests = %d, want 1", gets)
		}
	})
	t.Run("gives up after MaxAttempts", func(t *testing.T) {
		srv := newFaultServer(t, body, func(n int64, w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "down", http.StatusBadGateway)
			return true
		})
		d := testDownloader(t, DownloadConfig{Retry: RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, MaxAttempts: 3}})
		err := d.Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: filepath.Join(t.TempDir(), "f"), SHA256: sum})
		wantReason(t, err, ReasonDownloadFailed)
		if gets, _ := srv.stats(); gets != 3 {
			t.Errorf("GET requests = %d, want 3", gets)
		}
	})
}

func TestDownloadStallIsAbortedAndResumed(t *testing.T) {
	body, sum := payload(t, 1<<20)
	half := len(body) / 2
	srv := newFaultServer(t, body, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n != 1 {
			return false
		}
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body[:half])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // hang until the client gives up
		return true
	})
	d := testDownloader(t, DownloadConfig{StallTimeout: 200 * time.Millisecond, ProgressInterval: 20 * time.Millisecond})
	dest := filepath.Join(t.TempDir(), "f")
	if err := d.Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: dest, SHA256: sum}); err != nil {
		t.Fatalf("Download: %v", err)
	}
	if _, ranges := srv.stats(); len(ranges) != 2 || ranges[1] != "bytes="+strconv.Itoa(half)+"-" {
		t.Errorf("Range headers = %q, want a resume from %d", ranges, half)
	}
}

func TestDownloadRestartsWhenServerIgnoresRange(t *testing.T) {
	body, sum := payload(t, 1<<20)
	srv := newFaultServer(t, body, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			dropAfter(w, body, len(body)/2)
		}
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
			// Claims ranges in HEAD, then sends the whole file with 200.
			w.Header().Set("Accept-Ranges", "bytes")
			_, _ = w.Write(body)
			return true
		}
		return false
	})
	dest := filepath.Join(t.TempDir(), "f")
	if err := testDownloader(t, DownloadConfig{}).Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: dest, SHA256: sum}); err != nil {
		t.Fatalf("Download: %v", err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, body) {
		t.Fatal("file differs from body: an ignored range was appended")
	}
}

func TestDownloadSizeLimit(t *testing.T) {
	body, sum := payload(t, 256<<10)
	for _, chunked := range []bool{false, true} {
		t.Run("chunked="+strconv.FormatBool(chunked), func(t *testing.T) {
			srv := newFaultServer(t, body, func(n int64, w http.ResponseWriter, r *http.Request) bool {
				if !chunked {
					return false
				}
				for i := 0; i < len(body); i += 32 << 10 {
					_, _ = w.Write(body[i : i+32<<10])
					w.(http.Flusher).Flush()
				}
				return true
			})
			dest := filepath.Join(t.TempDir(), "f")
			err := testDownloader(t, DownloadConfig{MaxSize: 100 << 10}).Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: dest, SHA256: sum})
			wantReason(t, err, ReasonDownloadFailed)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("err = %v, want ErrTooLarge", err)
			}
			if _, statErr := os.Stat(dest); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("oversized partial file kept: %v", statErr)
			}
		})
	}
}

func TestDownloadSchemes(t *testing.T) {
	body, sum := payload(t, 32<<10)
	t.Run("http refused unless allowed", func(t *testing.T) {
		srv := newFaultServer(t, body, nil)
		d, err := NewDownloader(DownloadConfig{})
		if err != nil {
			t.Fatal(err)
		}
		err = d.Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: filepath.Join(t.TempDir(), "f"), SHA256: sum})
		wantReason(t, err, ReasonDownloadFailed)
		if !errors.Is(err, ErrSchemeNotAllowed) {
			t.Errorf("err = %v, want ErrSchemeNotAllowed", err)
		}
		if srv.n.Load() != 0 {
			t.Errorf("server saw %d requests, want none", srv.n.Load())
		}
	})
	t.Run("file", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "src.bin")
		if err := os.WriteFile(src, body, 0o644); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(t.TempDir(), "f")
		d, _ := NewDownloader(DownloadConfig{})
		if err := d.Download(context.Background(), DownloadRequest{URL: "file://" + src, Dest: dest, SHA256: sum}); err != nil {
			t.Fatalf("Download: %v", err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, body) {
			t.Error("file:// copy differs")
		}
		err := d.Download(context.Background(), DownloadRequest{URL: "file://" + src + ".missing", Dest: dest + "2", SHA256: sum})
		wantReason(t, err, ReasonDownloadFailed)
	})
	t.Run("https with CA bundle", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(body))
		}))
		defer srv.Close()
		ca := filepath.Join(t.TempDir(), "ca.pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
			t.Fatal(err)
		}
		// Without the bundle the server is not trusted, and that is not retried.
		d, _ := NewDownloader(DownloadConfig{})
		err := d.Download(context.Background(), DownloadRequest{URL: srv.URL + "/f", Dest: filepath.Join(t.TempDir(), "f"), SHA256: sum})
		wantReason(t, err, ReasonDownloadFailed)

		hc, err := NewHTTPClient(HTTPClientConfig{CAFile: ca})
		if err != nil {
			t.Fatal(err)
		}
		d, _ = NewDownloader(DownloadConfig{HTTPClient: hc})
		dest := filepath.Join(t.TempDir(), "f")
		if err := d.Download(context.Background(), DownloadRequest{URL: srv.URL + "/f", Dest: dest, SHA256: sum}); err != nil {
			t.Fatalf("Download with CA bundle: %v", err)
		}
	})
}

func TestDownloadCanceledKeepsPartialForResume(t *testing.T) {
	body, sum := payload(t, 1<<20)
	half := len(body) / 2
	ctx, cancel := context.WithCancel(context.Background())
	srv := newFaultServer(t, body, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n != 1 {
			return false
		}
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body[:half])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	})
	dest := filepath.Join(t.TempDir(), "f")
	d := testDownloader(t, DownloadConfig{ProgressInterval: 10 * time.Millisecond})
	err := d.Download(ctx, DownloadRequest{URL: srv.URL + "/file", Dest: dest, SHA256: sum,
		Progress: func(p Progress) {
			if p.BytesComplete >= int64(half) {
				cancel()
			}
		}})
	wantReason(t, err, ReasonDownloadFailed)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled inside", err)
	}
	if fi, statErr := os.Stat(dest); statErr != nil || fi.Size() == 0 {
		t.Fatalf("partial file not kept for resume: %v", statErr)
	}
	if err := d.Download(context.Background(), DownloadRequest{URL: srv.URL + "/file", Dest: dest, SHA256: sum}); err != nil {
		t.Fatalf("second Download: %v", err)
	}
	if _, ranges := srv.stats(); len(ranges) != 2 || ranges[1] == "" {
		t.Errorf("Range headers = %q, want the second download to resume", ranges)
	}
}
