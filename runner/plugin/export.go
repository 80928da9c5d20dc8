package plugin

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome is how one scheduled run of a plugin ended, the result label of
// keystone_plugin_runs_total.
type Outcome string

const (
	OutcomeOK      Outcome = "ok"      // the run succeeded and its values are exported
	OutcomeError   Outcome = "error"   // the run failed; nothing of it is exported
	OutcomeSkipped Outcome = "skipped" // the run was due while the previous one still ran
)

// staleAfter is how many intervals a plugin's last good values are served
// for; past that they are dropped and keystone_plugin_up is 0.
const staleAfter = 3

// runDurationBuckets suit runs from a few milliseconds to a timeout.
var runDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// ExporterConfig is what an Exporter needs.
type ExporterConfig struct {
	// TextfileDir, when set, gets <component>.prom with each plugin's last
	// good values, for node_exporter's textfile collector; "" = none.
	TextfileDir string
	// Now reads the clock for staleness; nil = time.Now.
	Now func() time.Time
	// Logger gets problems that are not a run's (a textfile that could not
	// be written, two plugins exporting the same series); nil discards.
	Logger *slog.Logger
}

// Exporter holds every plugin's last good values and run counts and serves
// them as a prometheus.Collector (register it in the agent's registry):
// keystone_plugin_runs_total{plugin,result},
// keystone_plugin_run_duration_seconds{plugin}, keystone_plugin_up{plugin}
// and each plugin's own series. A plugin whose last good run is older than
// three intervals has its values dropped (and its textfile removed) and
// keystone_plugin_up 0. It is safe for concurrent use.
type Exporter struct {
	textfileDir string
	now         func() time.Time
	log         *slog.Logger

	runs      *prometheus.CounterVec
	durations *prometheus.HistogramVec
	up        *prometheus.Desc

	mu      sync.Mutex
	plugins map[string]*exported
	warned  map[string]bool // cross-plugin conflicts already logged

	fileMu sync.Mutex      // textfile writes and removals; taken before mu
	files  map[string]bool // plugins whose textfile exists
}

// exported is one plugin's part.
type exported struct {
	interval time.Duration
	lastGood time.Time // zero: no good run yet
	series   []series
}

// series is one exported series: built once per good run, sent at every
// scrape while fresh.
type series struct {
	src    Metric
	key    string // seriesKey of src
	metric prometheus.Metric
}

// NewExporter makes an Exporter; TextfileDir must exist when set.
func NewExporter(cfg ExporterConfig) (*Exporter, error) {
	if cfg.TextfileDir != "" {
		if st, err := statDir(cfg.TextfileDir); err != nil {
			return nil, fmt.Errorf("plugin textfile_dir: %w", err)
		} else if !st {
			return nil, fmt.Errorf("plugin textfile_dir %s is not a folder", cfg.TextfileDir)
		}
	}
	e := &Exporter{
		textfileDir: cfg.TextfileDir, now: cfg.Now, log: cfg.Logger,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keystone_plugin_runs_total",
			Help: "Plugin runs by result: ok, error, or skipped (came due while the previous run still ran).",
		}, []string{"plugin", "result"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keystone_plugin_run_duration_seconds",
			Help:    "Duration of plugin runs that ran (ok or error).",
			Buckets: runDurationBuckets,
		}, []string{"plugin"}),
		up: prometheus.NewDesc("keystone_plugin_up",
			"1 when the plugin's last good run is recent (within 3 intervals) and its values are served, else 0.",
			[]string{"plugin"}, nil),
		plugins: map[string]*exported{},
		warned:  map[string]bool{},
		files:   map[string]bool{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// Add starts exporting a plugin run every interval: keystone_plugin_up is
// 0 and its run counts are 0 until it records runs. Adding a plugin again
// (a restart, a new version) keeps its counts and last values and takes
// the new interval.
func (e *Exporter) Add(name string, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.plugins[name]; ok {
		p.interval = interval
		return
	}
	e.plugins[name] = &exported{interval: interval}
	for _, o := range []Outcome{OutcomeOK, OutcomeError, OutcomeSkipped} {
		e.runs.WithLabelValues(name, string(o))
	}
	e.durations.WithLabelValues(name)
}

// Record counts a run of an added plugin and, for OutcomeOK, makes metrics
// (mapped, see Plugin.Run) its values and writes its textfile. A run that
// is not OutcomeOK leaves the last good values in place until they are
// stale, then removes the textfile. took is ignored for OutcomeSkipped. The
// error says the textfile could not be written or removed; the values are
// exported all the same.
func (e *Exporter) Record(name string, o Outcome, took time.Duration, metrics []Metric) error {
	var built []series
	if o == OutcomeOK {
		var err error
		if built, err = buildSeries(name, metrics); err != nil {
			return err
		}
	}
	e.mu.Lock()
	p, ok := e.plugins[name]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("plugin %s: not added to the exporter", name)
	}
	e.runs.WithLabelValues(name, string(o)).Inc()
	if o != OutcomeSkipped {
		e.durations.WithLabelValues(name).Observe(took.Seconds())
	}
	now := e.now()
	if o == OutcomeOK {
		p.series, p.lastGood = built, now
	}
	stale := e.stale(p, now)
	e.mu.Unlock()
	if e.textfileDir == "" {
		return nil
	}
	return e.syncTextfile(name, o == OutcomeOK, built, stale)
}

// syncTextfile writes a plugin's textfile after a good run, or removes it
// once its values are stale. File work is serialised apart from the
// values, so a slow disk never holds up a scrape.
func (e *Exporter) syncTextfile(name string, good bool, built []series, stale bool) error {
	e.fileMu.Lock()
	defer e.fileMu.Unlock()
	e.mu.Lock()
	_, present := e.plugins[name]
	e.mu.Unlock()
	switch {
	case !present: // removed meanwhile: Remove deletes the file
		return nil
	case good:
		if err := e.writeTextfile(name, built); err != nil {
			return err
		}
		e.files[name] = true
	case stale && e.files[name]:
		delete(e.files, name)
		return e.removeTextfile(name)
	}
	return nil
}

// Remove forgets a plugin that is no longer deployed: its values, its run
// counts and its textfile.
func (e *Exporter) Remove(name string) error {
	e.mu.Lock()
	delete(e.plugins, name)
	e.runs.DeletePartialMatch(prometheus.Labels{"plugin": name})
	e.durations.DeletePartialMatch(prometheus.Labels{"plugin": name})
	e.mu.Unlock()
	if e.textfileDir == "" {
		return nil
	}
	e.fileMu.Lock()
	defer e.fileMu.Unlock()
	delete(e.files, name)
	return e.removeTextfile(name)
}

// Names lists the plugins added and not removed, sorted.
func (e *Exporter) Names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.plugins))
}

// stale reports whether p's values are too old to serve.
func (e *Exporter) stale(p *exported, now time.Time) bool {
	return p.lastGood.IsZero() || now.Sub(p.lastGood) > staleAfter*p.interval
}

// Describe sends nothing: the plugins' series change with every run, so
// the Exporter is an unchecked collector.
func (e *Exporter) Describe(chan<- *prometheus.Desc) {}

// Collect sends the run counts, every plugin's up, and the values of the
// fresh plugins. When plugins disagree about a name, the first by plugin
// name decides its type and help; a series of another type, or one that
// another plugin already sent with the same labels, is left out (and
// logged once).
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.runs.Collect(ch)
	e.durations.Collect(ch)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	type family struct {
		typ    Type
		help   string
		plugin string
	}
	families := map[string]family{}
	sent := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(e.plugins)) {
		p := e.plugins[name]
		fresh := !e.stale(p, now)
		up := 0.0
		if fresh {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(e.up, prometheus.GaugeValue, up, name)
		if !fresh {
			continue
		}
		for _, s := range p.series {
			m := s.src
			f, seen := families[m.Name]
			if !seen {
				families[m.Name] = family{typ: m.Type, help: m.Help, plugin: name}
			} else if f.typ != m.Type {
				e.warnOnce(name, m.Name, fmt.Sprintf("is a %s in plugin %s; this %s is left out", f.typ, f.plugin, m.Type))
				continue
			}
			if other, dup := sent[s.key]; dup {
				e.warnOnce(name, s.key, "the same series is exported by plugin "+other+"; this one is left out")
				continue
			}
			sent[s.key] = name
			metric := s.metric
			if seen && f.help != m.Help {
				m.Help = f.help
				var err error
				if metric, err = newConstMetric(m); err != nil {
					continue // cannot happen: m was built once already
				}
			}
			ch <- metric
		}
	}
}

// warnOnce logs a cross-plugin conflict once per plugin and subject.
func (e *Exporter) warnOnce(plugin, subject, msg string) {
	k := plugin + "\x00" + subject
	if e.warned[k] {
		return
	}
	e.warned[k] = true
	e.log.Warn("plugin series left out of /metrics", "plugin", plugin, "metric", firstField(subject), "reason", msg)
}

// firstField is a series key's metric name.
func firstField(key string) string {
	for i := range len(key) {
		if key[i] == 0 {
			return key[:i]
		}
	}
	return key
}

// buildSeries turns mapped metrics into constant Prometheus metrics, with a
// help for those the plugin gave none.
func buildSeries(plugin string, metrics []Metric) ([]series, error) {
	out := make([]series, 0, len(metrics))
	for _, m := range metrics {
		if m.Help == "" {
			m.Help = fmt.Sprintf("%s, reported by the plugin %s.", m.Name, plugin)
		}
		pm, err := newConstMetric(m)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: export %s: %w", plugin, m.Name, err)
		}
		out = append(out, series{src: m, key: seriesKey(m.Name, m.Labels), metric: pm})
	}
	return out, nil
}

// newConstMetric builds one constant metric.
func newConstMetric(m Metric) (prometheus.Metric, error) {
	names := slices.Sorted(maps.Keys(m.Labels))
	values := make([]string, len(names))
	for i, n := range names {
		values[i] = m.Labels[n]
	}
	desc := prometheus.NewDesc(m.Name, m.Help, names, nil)
	switch m.Type {
	case Counter:
		return prometheus.NewConstMetric(desc, prometheus.CounterValue, m.Value, values...)
	case Gauge:
		return prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.Value, values...)
	case Histogram:
		buckets := make(map[float64]uint64, len(m.Buckets))
		for _, b := range m.Buckets {
			if !math.IsInf(b.UpperBound, 1) {
				buckets[b.UpperBound] = b.Count
			}
		}
		return prometheus.NewConstHistogram(desc, m.Count, m.Sum, buckets, values...)
	}
	return nil, errors.New("unknown metric type " + string(m.Type))
}
