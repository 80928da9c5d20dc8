package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Server timeouts. Streams (logs and events with follow=1) lift the write
// deadline for themselves; everything else must finish within them.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
)

// componentSupervisor is what the API needs of the supervisor.
type componentSupervisor interface {
	Snapshot() []supervisor.Status
	Component(name string) (supervisor.Status, error)
	StartComponent(ctx context.Context, name string) (supervisor.State, error)
	StopComponent(ctx context.Context, name string) (supervisor.State, error)
	RestartComponent(ctx context.Context, name string) (supervisor.State, error)
}

// eventHistory is what the API reads of the recorded events.
type eventHistory interface {
	ComponentEvents(ctx context.Context, component string, limit int) ([]store.Event, error)
	// Recent returns up to limit of the latest events, oldest first.
	Recent(ctx context.Context, limit int) ([]store.Event, error)
}

// subscriber is the event bus as the API follows it.
type subscriber interface {
	Subscribe(ctx context.Context, buffer int) <-chan events.Event
}

// apiServer answers the local API (SPEC §7). It holds no state of its own:
// every answer is read from the supervisor, the store, the logs or the bus
// at request time, and every action is a call into them.
type apiServer struct {
	sup     componentSupervisor
	deploys deployments
	history eventHistory
	logs    *logs.Manager
	bus     subscriber
	plugins pluginRunner
	metrics http.Handler
	health  func(ctx context.Context) error
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
	s.routeProbes(mux)
	mux.HandleFunc("GET /v1/components", s.listComponents)
	mux.HandleFunc("GET /v1/components/{name}", s.getComponent)
	mux.HandleFunc("POST /v1/components/{name}/{action}", s.actOnComponent)
	mux.HandleFunc("GET /v1/components/{name}/logs", s.componentLogs)
	mux.HandleFunc("POST /v1/deployments", s.postDeployment)
	mux.HandleFunc("GET /v1/deployments", s.listDeployments)
	mux.HandleFunc("GET /v1/deployments/{id}", s.getDeployment)
	mux.HandleFunc("POST /v1/deployments/{id}/cancel", s.cancelDeployment)
	mux.HandleFunc("POST /v1/deployments/rollback", s.rollbackDeployment)
	mux.HandleFunc("POST /v1/plugins/{name}/run", s.runPlugin)
	mux.HandleFunc("GET /v1/events", s.streamEvents)
	mux.HandleFunc("/", s.notFound)
	return s.wrap(mux)
}

// tcpHandler serves only /metrics and /healthz: what http_listen exposes.
func (s *apiServer) tcpHandler() http.Handler {
	mux := http.NewServeMux()
	s.routeProbes(mux)
	mux.HandleFunc("/", s.notFound)
	return s.wrap(mux)
}

func (s *apiServer) routeProbes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metrics)
}

// wrap bounds every request body, so that no handler can be made to read
// more than api.MaxBodyBytes.
func (s *apiServer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

func (s *apiServer) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, s.log, r, &requestError{
		status: http.StatusNotFound, code: api.CodeNotFound,
		msg: "no endpoint " + r.Method + " " + r.URL.Path,
	})
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
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// intParam reads a non-negative integer query parameter; def when absent.
func intParam(r *http.Request, name string, def, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest("%s=%q: want a non-negative integer", name, v)
	}
	if n > max {
		n = max
	}
	return n, nil
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
