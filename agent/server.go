package agent

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
	"github.com/keystone-edge/keystone/supervisor/plugins"
)

// Server timeouts. Streams (logs and events with follow=1) lift the write
// deadline for themselves; everything else must finish within them.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	// serverMaxHeaderBytes is what net/http reads of a request's header
	// before it refuses the request itself; see newHTTPServer.
	serverMaxHeaderBytes = 1 << 20
)

// apiServer answers the local API (docs/operations.md). It holds no state
// of its own: every answer is read from the supervisor, the store, the logs
// or the bus at request time, and every action is a call into them.
type apiServer struct {
	sup     *supervisor.Supervisor
	deploys *deploy.Engine // its answers become wire types in deployments_wire.go
	history *recorder
	logs    *logs.Manager
	bus     *events.Bus
	plugins *plugins.Launcher
	metrics http.Handler
	health  func(ctx context.Context) error
	update  *updater
	// streams ends when the agent shuts down; followers end with it, since
	// they have no end of their own.
	streams context.Context
	log     *slog.Logger
}

// streamContext is the request's context, also ended when the agent shuts
// down.
func (s *apiServer) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.streams, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// socketHandler serves every endpoint; it is what the Unix socket answers.
func (s *apiServer) socketHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/components", s.answer(s.listComponents))
	mux.HandleFunc("GET /v1/components/{name}", s.answer(s.getComponent))
	mux.HandleFunc("POST /v1/components/{name}/{action}", s.answer(s.actOnComponent))
	mux.HandleFunc("GET /v1/components/{name}/logs", s.componentLogs)
	mux.HandleFunc("POST /v1/deployments", s.answer(s.postDeployment))
	mux.HandleFunc("GET /v1/deployments", s.answer(s.listDeployments))
	mux.HandleFunc("GET /v1/deployments/{id}", s.answer(s.getDeployment))
	mux.HandleFunc("POST /v1/deployments/{id}/cancel", s.answer(s.cancelDeployment))
	mux.HandleFunc("POST /v1/deployments/rollback", s.answer(s.rollbackDeployment))
	mux.HandleFunc("POST /v1/plugins/{name}/run", s.answer(s.runPlugin))
	mux.HandleFunc("GET /v1/events", s.streamEvents)
	mux.HandleFunc("POST /v1/agent/update", s.answer(s.postAgentUpdate))
	mux.HandleFunc("GET /v1/agent/update", s.answer(s.getAgentUpdate))
	return s.withProbes(mux)
}

// tcpHandler serves only /metrics and /healthz: what http_listen exposes.
func (s *apiServer) tcpHandler() http.Handler { return s.withProbes(http.NewServeMux()) }

// withProbes adds /healthz, /metrics and the JSON 404 to mux, and wraps it.
func (s *apiServer) withProbes(mux *http.ServeMux) http.Handler {
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metrics)
	mux.HandleFunc("/", s.answer(notFound))
	return s.wrap(mux)
}

// handler answers a request with a status and a value to send as JSON, or
// with an error for writeError.
type handler func(r *http.Request) (status int, body any, err error)

func (s *apiServer) answer(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r)
		if err != nil {
			writeError(w, s.log, r, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// wrap checks what every request must be before any handler sees it: its
// header within api.MaxHeaderBytes, a body that is JSON and says so, and
// that body bounded, so that no handler can be made to read more than
// api.MaxBodyBytes. Each refusal is the API's JSON error.
func (s *apiServer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkEnvelope(r); err != nil {
			writeError(w, s.log, r, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

// checkEnvelope checks a request's header size and body type.
func checkEnvelope(r *http.Request) error {
	if n := headerSize(r); n > api.MaxHeaderBytes {
		return &requestError{status: http.StatusRequestHeaderFieldsTooLarge, code: api.CodeTooLarge,
			msg: fmt.Sprintf("the request line and headers have %d bytes, more than %d", n, api.MaxHeaderBytes)}
	}
	return checkContentType(r)
}

// headerSize counts the request line and headers as they were sent, near
// enough: what net/http's MaxHeaderBytes counts.
func headerSize(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// checkContentType refuses a body that is not declared JSON. A request
// that sends a body, or declares a type even for an empty one, must say
// application/json (parameters allowed; a charset must be UTF-8, JSON's
// only encoding). A body-less POST needs no type: curl -X POST sends none.
func checkContentType(r *http.Request) error {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if r.ContentLength == 0 {
			return nil
		}
		return unsupportedMedia("the request has a body but no Content-Type; send Content-Type: application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != api.ContentJSON {
		return unsupportedMedia("Content-Type %q: the body must be application/json", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupportedMedia("Content-Type %q: JSON is UTF-8; send charset=utf-8 or none", ct)
	}
	return nil
}

func unsupportedMedia(format string, args ...any) error {
	return &requestError{status: http.StatusUnsupportedMediaType, code: api.CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(r *http.Request) (int, any, error) {
	msg := "no endpoint " + r.Method + " " + r.URL.Path
	return 0, nil, &requestError{status: http.StatusNotFound, code: api.CodeNotFound, msg: msg}
}

func (s *apiServer) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.health(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Message: err.Error(), Code: api.CodeInternal})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// newHTTPServer is an http.Server with every timeout set.
func newHTTPServer(h http.Handler, log *slog.Logger, base context.Context) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		// Far above api.MaxHeaderBytes, which wrap enforces with a JSON
		// answer; past this net/http answers 431 itself, in plain text.
		MaxHeaderBytes: serverMaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return base },
	}
}

// intParam reads a non-negative integer query parameter, cut to limit;
// def when absent.
func intParam(r *http.Request, name string, def, limit int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest("%s=%q: want a non-negative integer", name, v)
	}
	return min(n, limit), nil
}

// boolParam reads a flag parameter: "1", "true" or "yes" (any case) is true.
func boolParam(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	default:
		return false, badRequest("%s=%q: want 1 or 0", name, v)
	}
}
