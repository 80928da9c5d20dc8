package ota

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// HTTPClientConfig shapes the private HTTP client used for artifacts and the
// component repository. The zero value is usable.
type HTTPClientConfig struct {
	// CAFile is an extra PEM bundle trusted for https:// besides the system
	// roots ([artifacts] ca_file). "" = system roots only.
	CAFile string
	// DialTimeout bounds connecting. 0 = 30s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers once a
	// request is sent. 0 = 30s.
	ResponseHeaderTimeout time.Duration
}

// NewHTTPClient builds a client of its own (never http.DefaultClient) that
// also understands file:// URLs. It has no overall timeout, since large
// downloads are long; stalls are caught by the Downloader instead.
func NewHTTPClient(cfg HTTPClientConfig) (*http.Client, error) {
	dial := cfg.DialTimeout
	if dial == 0 {
		dial = 30 * time.Second
	}
	header := cfg.ResponseHeaderTimeout
	if header == 0 {
		header = 30 * time.Second
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA bundle %s: no PEM certificates found", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: header,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
	t.RegisterProtocol("file", http.NewFileTransport(http.Dir("/")))
	return &http.Client{Transport: t}, nil
}
