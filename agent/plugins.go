package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
	"github.com/keystone-edge/keystone/supervisor/plugins"
)

// pluginRunTimeout bounds POST /v1/plugins/{name}/run beyond the plugin's
// own timeout (waiting for a scheduled run in progress, then this run).
const pluginRunTimeout = time.Minute

// pluginParts are the agent's metrics plugin machinery: the WASM
// engine, the exporter on /metrics (and in textfile_dir), and the
// launcher the supervisor uses for kind = plugin.
type pluginParts struct {
	wasm     *plugin.WasmEngine
	exporter *plugin.Exporter
	launcher *plugins.Launcher
}

// newPluginParts builds them; textfile_dir is created when missing.
func newPluginParts(cfg *config.Config, run *runner.Runner, st *store.Store, logMgr *logs.Manager,
	bus *events.Bus, clock supervisor.Clock, log *slog.Logger) (*pluginParts, error) {
	if dir := cfg.Plugins.TextfileDir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("plugins.textfile_dir: %w", err)
		}
	}
	exporter, err := plugin.NewExporter(plugin.ExporterConfig{
		TextfileDir: cfg.Plugins.TextfileDir, Now: clock.Now, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	wasm, err := plugin.NewWasmEngine(plugin.WasmConfig{})
	if err != nil {
		return nil, err
	}
	launcher, err := plugins.New(plugins.Config{
		Runner: run, Wasm: wasm, Exporter: exporter, State: st, Logs: logMgr,
		DeviceID: cfg.DeviceID, DefaultRunAs: cfg.DefaultRunAs, AllowRoot: cfg.Security.AllowRoot,
		Events: bus, Clock: clock, Logger: log,
	})
	if err != nil {
		_ = wasm.Close(context.Background())
		return nil, err
	}
	return &pluginParts{wasm: wasm, exporter: exporter, launcher: launcher}, nil
}

// retainingSupervisor is the supervisor as the deployment engine sees it:
// after each Apply, plugins no longer deployed are forgotten by the
// exporter (their values, counts and textfile).
type retainingSupervisor struct {
	*supervisor.Supervisor
	plugins *plugins.Launcher
	log     *slog.Logger
}

var _ deploy.Supervisor = retainingSupervisor{}

// Apply applies comps, then forgets the plugins that are not among them.
func (s retainingSupervisor) Apply(ctx context.Context, comps []*supervisor.Component) error {
	err := s.Supervisor.Apply(ctx, comps)
	names := make([]string, 0, len(comps))
	for _, c := range comps {
		names = append(names, c.Name())
	}
	if rerr := s.plugins.Retain(names); rerr != nil {
		s.log.Warn("forget removed plugins", "err", rerr)
	}
	return err
}

// pluginRunner is what the API needs of the plugin launcher.
type pluginRunner interface {
	RunNow(ctx context.Context, name string) ([]plugin.Metric, error)
	Status(name string) (plugins.Status, error)
}

// runPlugin is POST /v1/plugins/{name}/run: run a scheduled plugin now and
// answer its mapped metrics.
func (s *apiServer) runPlugin(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, err := s.sup.Component(name)
	if err != nil {
		writeError(w, s.log, r, err) // it names the component
		return
	}
	if st.Kind != recipes.KindPlugin {
		writeError(w, s.log, r, &requestError{status: http.StatusConflict, code: api.CodeIllegal,
			msg: fmt.Sprintf("%s is a %s component, not a plugin", name, st.Kind)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pluginRunTimeout)
	defer cancel()
	metrics, err := s.plugins.RunNow(ctx, name)
	var re *plugin.RunError
	switch {
	case errors.Is(err, plugins.ErrNotScheduled):
		writeError(w, s.log, r, &requestError{status: http.StatusConflict, code: api.CodeIllegal,
			msg: fmt.Sprintf("plugin %s is %s, not scheduled: start it first", name, st.State)})
		return
	case errors.As(err, &re):
		writeError(w, s.log, r, &requestError{status: http.StatusBadGateway, code: api.CodePluginFailed, msg: err.Error()})
		return
	case err != nil:
		writeError(w, s.log, r, fmt.Errorf("run plugin %s: %w", name, err))
		return
	}
	writeJSON(w, http.StatusOK, wireMetrics(metrics))
}

// wireMetrics are mapped plugin series as the API answers them.
func wireMetrics(ms []plugin.Metric) []api.Metric {
	out := make([]api.Metric, 0, len(ms))
	for _, m := range ms {
		w := api.Metric{Name: m.Name, Type: string(m.Type), Help: m.Help, Labels: m.Labels, Value: m.Value}
		if m.Type == plugin.Histogram {
			w.Buckets = make(map[string]float64, len(m.Buckets))
			for _, b := range m.Buckets {
				bound := "+Inf"
				if !math.IsInf(b.UpperBound, 1) {
					bound = strconv.FormatFloat(b.UpperBound, 'g', -1, 64)
				}
				w.Buckets[bound] = float64(b.Count)
			}
			w.Sum, w.Count = m.Sum, m.Count
		}
		out = append(out, w)
	}
	return out
}

// withPluginStatus shows a plugin's failing runs in its status: a plugin
// stays RUNNING while scheduled, so its last_error is the last failed
// run's while it keeps failing.
func (s *apiServer) withPluginStatus(c api.Component, st supervisor.Status) api.Component {
	if st.Kind != recipes.KindPlugin || s.plugins == nil {
		return c
	}
	ps, err := s.plugins.Status(st.Name)
	if err == nil && ps.Failing() {
		c.LastError = fmt.Sprintf("%d consecutive failed runs; last: %s", ps.ConsecutiveFailures, ps.LastError)
	}
	return c
}
