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
	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/plugins"
)

// pluginRunTimeout bounds POST /v1/plugins/{name}/run beyond the plugin's
// own timeout (waiting for a scheduled run in progress, then this run).
const pluginRunTimeout = time.Minute

// pluginParts are the agent's metrics plugin machinery: the exporter on
// /metrics (and in textfile_dir), and the launcher the supervisor uses for
// kind = plugin. The WASM engine under them is released at shutdown.
type pluginParts struct {
	exporter *plugin.Exporter
	launcher *plugins.Launcher
}

// newPluginParts builds them over run; textfile_dir is created when
// missing.
func (a *Agent) newPluginParts(run *runner.Runner) (*pluginParts, error) {
	cfg, log := a.cfg, a.log.With("part", "plugins")
	if dir := cfg.Plugins.TextfileDir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("plugins.textfile_dir: %w", err)
		}
	}
	exporter, err := plugin.NewExporter(plugin.ExporterConfig{
		TextfileDir: cfg.Plugins.TextfileDir, Now: a.clock.Now, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	wasm, err := plugin.NewWasmEngine(plugin.WasmConfig{})
	if err != nil {
		return nil, err
	}
	a.stack.push("release the WASM engine", wasm.Close)
	launcher, err := plugins.New(plugins.Config{
		Runner: run, Wasm: wasm, Exporter: exporter, State: a.store, Logs: a.logs,
		DeviceID: cfg.DeviceID, DefaultRunAs: cfg.DefaultRunAs, AllowRoot: cfg.Security.AllowRoot,
		Events: a.bus, Clock: a.clock, Logger: log,
		OnRun: func(r plugins.Report) {
			if r.Err == nil && a.comms != nil { // set before any plugin runs (Start)
				a.comms.PublishMetrics(r.Component, wireAll(r.Metrics, wireMetric))
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return &pluginParts{exporter: exporter, launcher: launcher}, nil
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

// runPlugin is POST /v1/plugins/{name}/run: run a scheduled plugin now and
// answer its mapped metrics.
func (s *apiServer) runPlugin(r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	st, err := s.sup.Component(name)
	if err != nil {
		return 0, nil, err // it names the component
	}
	if st.Kind != recipes.KindPlugin {
		return 0, nil, &requestError{status: http.StatusConflict, code: api.CodeIllegal,
			msg: fmt.Sprintf("%s is a %s component, not a plugin", name, st.Kind)}
	}
	ctx, cancel := context.WithTimeout(r.Context(), pluginRunTimeout)
	defer cancel()
	metrics, err := s.plugins.RunNow(ctx, name)
	var re *plugin.RunError
	switch {
	case errors.Is(err, plugins.ErrNotScheduled):
		return 0, nil, &requestError{status: http.StatusConflict, code: api.CodeIllegal,
			msg: fmt.Sprintf("plugin %s is %s, not scheduled: start it first", name, st.State)}
	case errors.As(err, &re):
		return 0, nil, &requestError{status: http.StatusBadGateway, code: api.CodePluginFailed, msg: err.Error()}
	case err != nil:
		return 0, nil, fmt.Errorf("run plugin %s: %w", name, err)
	}
	return http.StatusOK, wireAll(metrics, wireMetric), nil
}

// wireMetric is a mapped plugin series as the API answers it.
func wireMetric(m plugin.Metric) api.Metric {
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
	return w
}
