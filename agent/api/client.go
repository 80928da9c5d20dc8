package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrUnavailable is wrapped by every error that comes from not reaching the
// agent at all (no socket, nobody listening, permission denied), as opposed
// to an answer from it.
var ErrUnavailable = errors.New("agent API unavailable")

// Client timeouts. A call as a whole is bounded by its context only, since
// logs and events can be followed for as long as the caller wants.
const (
	// DialTimeout bounds connecting to the socket.
	DialTimeout = 5 * time.Second
	// ResponseHeaderTimeout bounds the wait for an answer to start once a
	// request is sent. The agent validates a deployment before it answers
	// POST /v1/deployments, which can take a while on a slow device.
	ResponseHeaderTimeout = 2 * time.Minute
)

// maxErrorBody and maxAnswerBody bound what the client reads of one answer.
const (
	maxErrorBody  = 1 << 20
	maxAnswerBody = 64 << 20
)

// Client calls an agent's local API (docs/operations.md) over its Unix
// socket. It is safe for concurrent use. Failures the agent answers come
// back as *Error (use errors.As, or ErrorCode); failures to reach it wrap
// ErrUnavailable.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the agent whose API listens on the Unix
// socket at path. It connects on the first call, not here.
func NewClient(socket string) *Client {
	dialer := &net.Dialer{Timeout: DialTimeout}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		},
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		DisableCompression:    true,
	}
	return &Client{socket: socket, http: &http.Client{Transport: transport}}
}

// Socket returns the path of the socket the client talks to.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections. The client stays usable.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// Health calls GET /healthz: nil when the agent says its supervisor loop and
// store work.
func (c *Client) Health(ctx context.Context) error {
	var answer struct {
		Status string `json:"status"`
	}
	if err := c.call(ctx, http.MethodGet, PathHealthz, nil, &answer); err != nil {
		return err
	}
	if answer.Status != "ok" {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("agent health is %q", answer.Status)}
	}
	return nil
}

// Metrics returns GET /metrics, the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	body, err := c.stream(ctx, PathMetrics)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxAnswerBody))
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	return b, nil
}

// Components lists every component (GET /v1/components).
func (c *Client) Components(ctx context.Context) ([]Component, error) {
	var out []Component
	if err := c.call(ctx, http.MethodGet, PathComponents, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Component returns one component with its recent transitions
// (GET /v1/components/{name}). An unknown name is an *Error with code
// CodeNotFound.
func (c *Client) Component(ctx context.Context, name string) (ComponentDetail, error) {
	var out ComponentDetail
	err := c.call(ctx, http.MethodGet, PathComponents+"/"+url.PathEscape(name), nil, &out)
	return out, err
}

// RestartComponent asks the agent to restart a component and returns the
// component as the agent answers it (POST /v1/components/{name}/restart).
func (c *Client) RestartComponent(ctx context.Context, name string) (Component, error) {
	return c.act(ctx, name, "restart")
}

// StopComponent stops a component until it is started again or redeployed
// (POST /v1/components/{name}/stop).
func (c *Client) StopComponent(ctx context.Context, name string) (Component, error) {
	return c.act(ctx, name, "stop")
}

// StartComponent starts a stopped, finished or broken component
// (POST /v1/components/{name}/start).
func (c *Client) StartComponent(ctx context.Context, name string) (Component, error) {
	return c.act(ctx, name, "start")
}

func (c *Client) act(ctx context.Context, name, verb string) (Component, error) {
	var out Component
	err := c.call(ctx, http.MethodPost, PathComponents+"/"+url.PathEscape(name)+"/"+verb, nil, &out)
	return out, err
}

// LogsOptions selects the lines Logs returns.
type LogsOptions struct {
	// Tail is how many of the most recent lines to send first; 0 lets the
	// agent choose its default.
	Tail int
	// Follow keeps the stream open and sends new lines as they come, until
	// the context ends or the caller closes the stream.
	Follow bool
}

// Logs opens GET /v1/components/{name}/logs: the last lines the agent
// keeps, oldest first, and with opts.Follow every new line until ctx ends or
// the stream is closed. The caller must close the stream.
func (c *Client) Logs(ctx context.Context, name string, opts LogsOptions) (*Stream[LogLine], error) {
	q := url.Values{}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if opts.Follow {
		q.Set("follow", "1")
	}
	path := PathComponents + "/" + url.PathEscape(name) + "/logs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	body, err := c.stream(ctx, path)
	if err != nil {
		return nil, err
	}
	return newStream[LogLine](body), nil
}

// Deploy submits a deployment (POST /v1/deployments). The agent validates it
// before it answers: a manifest or recipe with problems is an *Error with
// code CodeInvalid listing each one in Details, and nothing is applied. With
// req.DryRun the answer carries the plan and nothing is recorded.
func (c *Client) Deploy(ctx context.Context, req DeploymentRequest) (DeploymentAccepted, error) {
	var out DeploymentAccepted
	err := c.call(ctx, http.MethodPost, PathDeployments, req, &out)
	return out, err
}

// Deployments lists the recorded deployments, newest first (GET
// /v1/deployments): at most limit of them, or the agent's default number
// when limit is 0.
func (c *Client) Deployments(ctx context.Context, limit int) ([]Deployment, error) {
	path := PathDeployments
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out []Deployment
	if err := c.call(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Deployment returns one deployment with every step (GET
// /v1/deployments/{id}); an unknown id is an *Error with code CodeNotFound.
func (c *Client) Deployment(ctx context.Context, id string) (Deployment, error) {
	var out Deployment
	err := c.call(ctx, http.MethodGet, PathDeployments+"/"+url.PathEscape(id), nil, &out)
	return out, err
}

// CancelDeployment asks the agent to stop a queued or running deployment at
// its next safe point and roll it back (POST /v1/deployments/{id}/cancel).
// It returns once the request is accepted, not when the rollback is done;
// the deployment as answered is returned when the agent sends it.
func (c *Client) CancelDeployment(ctx context.Context, id string) (Deployment, error) {
	var out Deployment
	err := c.call(ctx, http.MethodPost, PathDeployments+"/"+url.PathEscape(id)+"/cancel", nil, &out)
	return out, err
}

// RollbackDeployment re-applies the last successful deployment before the
// current one, as a new deployment (POST /v1/deployments/rollback).
func (c *Client) RollbackDeployment(ctx context.Context) (DeploymentAccepted, error) {
	var out DeploymentAccepted
	err := c.call(ctx, http.MethodPost, PathRollback, nil, &out)
	return out, err
}

// RunPlugin runs a metrics plugin now and returns its mapped metrics
// (POST /v1/plugins/{name}/run).
func (c *Client) RunPlugin(ctx context.Context, name string) ([]Metric, error) {
	var out []Metric
	if err := c.call(ctx, http.MethodPost, PathPlugins+"/"+url.PathEscape(name)+"/run", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Events opens GET /v1/events. With follow the stream carries each new
// event as it happens, until ctx ends or the stream is closed; without, it
// carries the recent events the agent keeps and ends.
func (c *Client) Events(ctx context.Context, follow bool) (*Stream[Event], error) {
	path := PathEvents
	if follow {
		path += "?follow=1"
	}
	body, err := c.stream(ctx, path)
	if err != nil {
		return nil, err
	}
	return newStream[Event](body), nil
}

// Stream reads one JSON object a line (the logs and events endpoints). It
// is not safe for concurrent use, except that Close may be called from
// another goroutine to end a blocked Next.
type Stream[T any] struct {
	body  io.ReadCloser
	lines *bufio.Scanner
}

// maxStreamLine bounds one line of a stream.
const maxStreamLine = 1 << 20

func newStream[T any](body io.ReadCloser) *Stream[T] {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxStreamLine)
	return &Stream[T]{body: body, lines: sc}
}

// Next returns the next object. It returns io.EOF when the agent ends the
// stream, and an error wrapping the context's when it was cancelled.
func (s *Stream[T]) Next() (T, error) {
	var v T
	for s.lines.Scan() {
		line := bytes.TrimSpace(s.lines.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &v); err != nil {
			return v, fmt.Errorf("decode stream line %q: %w", line, err)
		}
		return v, nil
	}
	if err := s.lines.Err(); err != nil {
		return v, fmt.Errorf("read stream: %w", err)
	}
	return v, io.EOF
}

// Close ends the stream.
func (s *Stream[T]) Close() error { return s.body.Close() }

// call sends one request with an optional JSON body and decodes a JSON
// answer into out (when out is not nil and the answer has a body).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// stream sends a GET and returns the body of a successful answer unread.
func (c *Client) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// do sends a request and turns a failed answer into *Error. On success the
// caller owns resp.Body.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	// The host is a placeholder: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://keystone-agent"+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, ctxErr)
		}
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, c.socket, opErr.Err)
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, decodeError(resp.StatusCode, data)
}

// decodeError makes the *Error for a failed answer: the agent's JSON error
// when the body is one, or one built from the status otherwise. The agent
// answers every request that reaches its handlers in JSON; a plain-text
// answer comes from its HTTP server refusing a malformed request before
// that (or from something else on the socket), and says so.
func decodeError(status int, body []byte) *Error {
	var e Error
	if err := json.Unmarshal(body, &e); err != nil || (e.Message == "" && e.Code == "") {
		text := plainText(body)
		if text == "" {
			text = http.StatusText(status)
		}
		e = Error{Message: fmt.Sprintf("HTTP %d: %s (plain text, not the API's JSON error: the HTTP layer refused the request before the API saw it)", status, text)}
	}
	if e.Code == "" {
		e.Code = codeForStatus(status)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return &e
}

// maxPlainText bounds how much of a non-JSON error body an error shows.
const maxPlainText = 300

// plainText is a non-JSON error body made safe to print: one line, control
// characters escaped, cut at maxPlainText bytes.
func plainText(body []byte) string {
	text := strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))
	if len(text) > maxPlainText {
		cut := maxPlainText
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	if strings.ContainsFunc(text, unicode.IsControl) {
		q := strconv.Quote(text)
		text = q[1 : len(q)-1]
	}
	return text
}

// codeForStatus is the error code an answer without one stands for.
func codeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return CodeBadRequest
	case http.StatusUnprocessableEntity:
		return CodeInvalid
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return CodeTooLarge
	default:
		return CodeInternal
	}
}

// Error returns the message followed by each detail not already in it, one
// per line, so that printing the error lists every problem.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	for _, d := range e.Details {
		if strings.Contains(e.Message, d) {
			continue
		}
		b.WriteString("\n  ")
		b.WriteString(d)
	}
	return b.String()
}

// ErrorCode returns the code of the *Error in err's chain, or "" when err
// is not an answer from the agent.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
