package api

import (
	"bufio"
	"bytes"
	"cmp"
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
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Health calls GET /healthz: nil when the agent says its supervisor loop and
// store work.
func (c *Client) Health(ctx context.Context) error {
	type health struct {
		Status string `json:"status"`
	}
	answer, err := call[health](ctx, c, http.MethodGet, PathHealthz, nil)
	if err != nil {
		return err
	}
	if answer.Status != "ok" {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("agent health is %q", answer.Status)}
	}
	return nil
}

// Metrics returns GET /metrics, the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, PathMetrics, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	return b, nil
}

// Components lists every component (GET /v1/components).
func (c *Client) Components(ctx context.Context) ([]Component, error) {
	return call[[]Component](ctx, c, http.MethodGet, PathComponents, nil)
}

// Component returns one component with its recent transitions
// (GET /v1/components/{name}). An unknown name is an *Error with code
// CodeNotFound.
func (c *Client) Component(ctx context.Context, name string) (ComponentDetail, error) {
	return call[ComponentDetail](ctx, c, http.MethodGet, PathComponents+"/"+url.PathEscape(name), nil)
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
	return call[Component](ctx, c, http.MethodPost, PathComponents+"/"+url.PathEscape(name)+"/"+verb, nil)
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
	return openStream[LogLine](ctx, c, path)
}

// Deploy submits a deployment (POST /v1/deployments). The agent validates it
// before it answers: a manifest or recipe with problems is an *Error with
// code CodeInvalid listing each one in Details, and nothing is applied. With
// req.DryRun the answer carries the plan and nothing is recorded.
func (c *Client) Deploy(ctx context.Context, req DeploymentRequest) (DeploymentAccepted, error) {
	return call[DeploymentAccepted](ctx, c, http.MethodPost, PathDeployments, req)
}

// Deployments lists the recorded deployments, newest first (GET
// /v1/deployments): at most limit of them, or the agent's default number
// when limit is 0.
func (c *Client) Deployments(ctx context.Context, limit int) ([]Deployment, error) {
	path := PathDeployments
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	return call[[]Deployment](ctx, c, http.MethodGet, path, nil)
}

// Deployment returns one deployment with every step (GET
// /v1/deployments/{id}); an unknown id is an *Error with code CodeNotFound.
func (c *Client) Deployment(ctx context.Context, id string) (Deployment, error) {
	return call[Deployment](ctx, c, http.MethodGet, PathDeployments+"/"+url.PathEscape(id), nil)
}

// CancelDeployment asks the agent to stop a queued or running deployment at
// its next safe point and roll it back (POST /v1/deployments/{id}/cancel).
// It returns once the request is accepted, not when the rollback is done;
// the deployment as answered is returned when the agent sends it.
func (c *Client) CancelDeployment(ctx context.Context, id string) (Deployment, error) {
	return call[Deployment](ctx, c, http.MethodPost, PathDeployments+"/"+url.PathEscape(id)+"/cancel", nil)
}

// RollbackDeployment re-applies the last successful deployment before the
// current one, as a new deployment (POST /v1/deployments/rollback); with
// dryRun it only answers the plan, and nothing is queued.
func (c *Client) RollbackDeployment(ctx context.Context, dryRun bool) (DeploymentAccepted, error) {
	path := PathRollback
	if dryRun {
		path += "?dry_run=1"
	}
	return call[DeploymentAccepted](ctx, c, http.MethodPost, path, nil)
}

// UpdateAgent asks the agent to update itself to req.Version (POST
// /v1/agent/update). It answers once the update is accepted; the agent
// then fetches the release and re-executes itself, so the socket goes away
// for a moment: poll AgentUpdate until Finished.
func (c *Client) UpdateAgent(ctx context.Context, req AgentUpdateRequest) (AgentUpdate, error) {
	return call[AgentUpdate](ctx, c, http.MethodPost, PathAgentUpdate, req)
}

// AgentUpdate returns the agent's last update of itself (GET
// /v1/agent/update); none yet is an *Error with code CodeNotFound.
func (c *Client) AgentUpdate(ctx context.Context) (AgentUpdate, error) {
	return call[AgentUpdate](ctx, c, http.MethodGet, PathAgentUpdate, nil)
}

// RunPlugin runs a metrics plugin now and returns its mapped metrics
// (POST /v1/plugins/{name}/run).
func (c *Client) RunPlugin(ctx context.Context, name string) ([]Metric, error) {
	return call[[]Metric](ctx, c, http.MethodPost, PathPlugins+"/"+url.PathEscape(name)+"/run", nil)
}

// Events opens GET /v1/events. With follow the stream carries each new
// event as it happens, until ctx ends or the stream is closed; without, it
// carries the recent events the agent keeps and ends.
func (c *Client) Events(ctx context.Context, follow bool) (*Stream[Event], error) {
	path := PathEvents
	if follow {
		path += "?follow=1"
	}
	return openStream[Event](ctx, c, path)
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

// openStream sends a GET and returns a stream over a successful answer.
func openStream[T any](ctx context.Context, c *Client, path string) (*Stream[T], error) {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxStreamLine)
	return &Stream[T]{body: resp.Body, lines: sc}, nil
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

// call sends one request with an optional JSON body and decodes the JSON
// answer, when it has a body, into a T. On error it returns the zero T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var out, zero T
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return zero, fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return zero, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
	if err != nil {
		return zero, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return zero, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return out, nil
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
		text := cmp.Or(plainText(body), http.StatusText(status))
		e = Error{Message: fmt.Sprintf("HTTP %d: %s (plain text, not the API's JSON error: the HTTP layer refused the request before the API saw it)", status, text)}
	}
	e.Code = cmp.Or(e.Code, codeForStatus(status))
	e.Message = cmp.Or(e.Message, http.StatusText(status))
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
