package agent

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// scrapeTimeout bounds the store reads a scrape makes.
const scrapeTimeout = 5 * time.Second

// metricsConfig is what the agent's metrics read at scrape time.
type metricsConfig struct {
	// Context is the agent's life; it bounds the store reads of a scrape.
	// Required.
	Context context.Context
	// Version labels keystone_agent_info.
	Version string
	// Components lists the supervised components; required.
	Components interface{ Snapshot() []supervisor.Status }
	// CPUSeconds reads a process's cumulative CPU time; required.
	CPUSeconds func(pid int) float64
	// OutboxPending counts the store's outbox; nil reports 0.
	OutboxPending func(ctx context.Context) (int, error)
	// CacheBytes sizes the artifact cache; nil reports 0.
	CacheBytes func(ctx context.Context) (int64, error)
	// MQTTConnected says whether the fleet connection is up; nil is 0
	// (local-only mode).
	MQTTConnected func() bool
	// Logger receives scrape problems; required.
	Logger *slog.Logger
	// Plugins serves the plugins' values and run counts; nil = none.
	Plugins prometheus.Collector
}

// metrics is the agent's private Prometheus registry: a collector
// that reads the supervisor and the store at scrape time, the deployment
// counters fed from the event bus, and the Go and process collectors.
type metrics struct {
	deployments *prometheus.CounterVec
	duration    prometheus.Histogram
	handler     http.Handler

	mu      sync.Mutex
	started map[string]time.Time // deployment id → when it went IN_PROGRESS
}

func newMetrics(cfg metricsConfig) (*metrics, error) {
	m := &metrics{
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keystone_deployments_total",
			Help: "Deployments finished since the agent started, by final status.",
		}, []string{"status"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keystone_deployment_duration_seconds",
			Help:    "Time from a deployment's start to its final status.",
			Buckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		started: map[string]time.Time{},
	}
	for _, st := range []string{"SUCCEEDED", "FAILED", "CANCELED"} {
		m.deployments.WithLabelValues(st) // present at 0 from the first scrape
	}
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{
		m.deployments, m.duration, newComponentCollector(cfg),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if cfg.Plugins != nil {
		cs = append(cs, cfg.Plugins)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return m, nil
}

// count follows deployment events until the channel closes: an IN_PROGRESS
// status starts the clock, a final status counts the deployment and
// observes its duration. A deployment's status events carry no step and
// their status in Detail["status"].
func (m *metrics) count(sub <-chan events.Event) {
	for e := range sub {
		if e.Kind != events.KindDeployment || e.Deployment == "" || e.Step != "" {
			continue
		}
		m.observe(e)
	}
}

func (m *metrics) observe(e events.Event) {
	status := cmp.Or(e.Detail["status"], e.To)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch status {
	case "IN_PROGRESS":
		if _, ok := m.started[e.Deployment]; !ok {
			m.started[e.Deployment] = e.At
		}
	case "SUCCEEDED", "FAILED", "CANCELED":
		m.deployments.WithLabelValues(status).Inc()
		if t, ok := m.started[e.Deployment]; ok {
			m.duration.Observe(e.At.Sub(t).Seconds())
			delete(m.started, e.Deployment)
		}
	}
}

// componentCollector reads every component's state, restarts, CPU and
// memory at scrape time, so the figures are never staler than the scrape.
type componentCollector struct {
	cfg metricsConfig

	info, state, restarts, cpu, rss, mqtt, outbox, cache *prometheus.Desc

	mu     sync.Mutex
	tracks map[string]*cpuTrack
}

// cpuTrack keeps a component's CPU counter monotonic across restarts: the
// seconds of its earlier processes are carried in base.
type cpuTrack struct {
	pid  int
	last float64
	base float64
}

func newComponentCollector(cfg metricsConfig) *componentCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &componentCollector{
		cfg:  cfg,
		info: desc("keystone_agent_info", "The running agent; always 1.", "version"),
		state: desc("keystone_component_state",
			"1 for the state each component is in, 0 for the others.", "component", "state"),
		restarts: desc("keystone_component_restarts_total",
			"Restarts of the component since it was deployed or last restarted by hand.", "component"),
		cpu: desc("keystone_component_cpu_seconds_total",
			"User and system CPU time of the component's main processes.", "component"),
		rss: desc("keystone_component_memory_rss_bytes",
			"Resident memory of the component's main process; 0 when it does not run.", "component"),
		mqtt:   desc("keystone_mqtt_connected", "1 while the fleet MQTT connection is up."),
		outbox: desc("keystone_outbox_pending", "Messages waiting in the outbox for the broker."),
		cache:  desc("keystone_artifact_cache_bytes", "Bytes held in the artifact cache."),
		tracks: map[string]*cpuTrack{},
	}
}

// Describe sends every descriptor.
func (c *componentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.state, c.restarts, c.cpu, c.rss, c.mqtt, c.outbox, c.cache} {
		ch <- d
	}
}

// Collect reads the supervisor and the store once.
func (c *componentCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, c.cfg.Version)
	snap := c.cfg.Components.Snapshot()
	c.mu.Lock()
	seen := make(map[string]bool, len(snap))
	for _, st := range snap {
		seen[st.Name] = true
		for s := supervisor.StateNew; s <= supervisor.StateBroken; s++ {
			v := 0.0
			if s == st.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, st.Name, s.String())
		}
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(st.Restarts), st.Name)
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, c.cpuSeconds(st), st.Name)
		ch <- prometheus.MustNewConstMetric(c.rss, prometheus.GaugeValue, float64(st.RSSBytes), st.Name)
	}
	for name := range c.tracks {
		if !seen[name] {
			delete(c.tracks, name) // removed by a deployment
		}
	}
	c.mu.Unlock()

	mqtt := 0.0
	if c.cfg.MQTTConnected != nil && c.cfg.MQTTConnected() {
		mqtt = 1
	}
	ch <- prometheus.MustNewConstMetric(c.mqtt, prometheus.GaugeValue, mqtt)
	ctx, cancel := context.WithTimeout(c.cfg.Context, scrapeTimeout)
	defer cancel()
	ch <- storeGauge(ctx, c.outbox, "outbox", c.cfg.OutboxPending)
	ch <- storeGauge(ctx, c.cache, "artifact cache", c.cfg.CacheBytes)
}

// storeGauge reads one gauge from the store; a nil read reports 0.
func storeGauge[N int | int64](ctx context.Context, d *prometheus.Desc, what string,
	read func(context.Context) (N, error)) prometheus.Metric {
	var n N
	if read != nil {
		var err error
		if n, err = read(ctx); err != nil {
			return prometheus.NewInvalidMetric(d, fmt.Errorf("%s: %w", what, err))
		}
	}
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n))
}

// cpuSeconds returns the component's CPU counter; c.mu is held.
func (c *componentCollector) cpuSeconds(st supervisor.Status) float64 {
	t := c.tracks[st.Name]
	if t == nil {
		t = &cpuTrack{}
		c.tracks[st.Name] = t
	}
	if st.Pid != t.pid {
		t.base += t.last
		t.pid, t.last = st.Pid, 0
	}
	if st.Pid > 0 {
		if v := c.cfg.CPUSeconds(st.Pid); v > t.last {
			t.last = v
		}
	}
	return t.base + t.last
}
