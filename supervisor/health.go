package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Checker runs a recipe's health checks: http(s):// (healthy on 2xx),
// tcp://host:port (healthy when a connection opens) and cmd:<shell>
// (healthy on exit 0). The probe's deadline comes from ctx.
type Checker struct {
	// Client makes the HTTP checks; nil means a private client that keeps
	// no idle connections and follows no redirects.
	Client *http.Client
	// ShellUser says who cmd: checks run as.
	ShellUser
}

// NewChecker returns a Checker with its own HTTP client.
func NewChecker() *Checker {
	return &Checker{Client: &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Probe runs check once. A malformed check is unhealthy with the reason.
func (c *Checker) Probe(ctx context.Context, comp *Component, check string) (bool, string) {
	switch {
	case strings.HasPrefix(check, "http://"), strings.HasPrefix(check, "https://"):
		return c.probeHTTP(ctx, check)
	case strings.HasPrefix(check, "tcp://"):
		return probeTCP(ctx, strings.TrimPrefix(check, "tcp://"))
	case strings.HasPrefix(check, "cmd:"):
		dir, env := "", map[string]string(nil)
		if comp != nil {
			dir, env = comp.VersionDir, comp.Secrets
		}
		if err := runShell(ctx, c.ShellUser, comp, "health check", dir, env, strings.TrimPrefix(check, "cmd:"), 0, nil); err != nil {
			return false, err.Error()
		}
		return true, "exit 0"
	}
	return false, fmt.Sprintf("unsupported health check %q (want http://, https://, tcp:// or cmd:)", check)
}

func (c *Checker) probeHTTP(ctx context.Context, url string) (bool, string) {
	client := c.Client
	if client == nil {
		client = NewChecker().Client
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "keystone-health/1")
	resp, err := client.Do(req)
	if err != nil {
		return false, describeNetErr(ctx, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, "HTTP " + resp.Status
	}
	return true, "HTTP " + resp.Status
}

func probeTCP(ctx context.Context, addr string) (bool, string) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return false, fmt.Sprintf("bad tcp check address %q: %v", addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, describeNetErr(ctx, err)
	}
	conn.Close()
	return true, "connected to " + addr
}

func describeNetErr(ctx context.Context, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "timed out"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// defaultProbeTimeout applies when a check has no timeout.
const defaultProbeTimeout = 3 * time.Second
