package ota

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDownload200MiBVsCurl downloads the same 200 MiB file over
// loopback with KeyStone's Downloader (sha256 verification included) and
// with curl, in the same run, and reports both rates and their ratio.
func BenchmarkDownload200MiBVsCurl(b *testing.B) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		b.Fatalf("curl not found (apt-get install curl): %v", err)
	}
	const size = 200 << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "artifact.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, src)
	}))
	defer srv.Close()
	d, err := NewDownloader(DownloadConfig{AllowHTTP: true})
	if err != nil {
		b.Fatal(err)
	}
	dest := filepath.Join(dir, "dest")
	var ks, cu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = os.Remove(dest)
		start := time.Now()
		if err := d.Download(context.Background(), DownloadRequest{URL: srv.URL + "/artifact.bin", Dest: dest, SHA256: sum, Size: size}); err != nil {
			b.Fatalf("keystone download: %v", err)
		}
		ks += time.Since(start)

		_ = os.Remove(dest)
		start = time.Now()
		if out, err := exec.Command(curl, "-sS", "--fail", "-o", dest, srv.URL+"/artifact.bin").CombinedOutput(); err != nil {
			b.Fatalf("curl: %v: %s", err, out)
		}
		cu += time.Since(start)
	}
	b.StopTimer()
	mb := float64(size) / 1e6 * float64(b.N)
	ksRate, cuRate := mb/ks.Seconds(), mb/cu.Seconds()
	b.ReportMetric(ksRate, "keystone-MB/s")
	b.ReportMetric(cuRate, "curl-MB/s")
	b.ReportMetric(ksRate/cuRate, "keystone/curl")
}
