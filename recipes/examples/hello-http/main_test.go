package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestHandlerGreetsAndReportsHealth(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "unhealthy")
	srv := httptest.NewServer(newHandler("hi from pos-12", flag))
	defer srv.Close()

	if code, body := get(t, srv.URL+"/"); code != 200 || body != "hi from pos-12" {
		t.Fatalf("GET / = %d %q, want 200 %q", code, body, "hi from pos-12")
	}
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("GET /healthz = %d %q, want 200 ok", code, body)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("GET /healthz with %s present = %d, want 503", flag, code)
	}
	if code, _ := get(t, srv.URL+"/nope"); code != http.StatusNotFound {
		t.Fatalf("GET /nope = %d, want 404", code)
	}
}
