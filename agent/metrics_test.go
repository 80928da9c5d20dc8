package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// specMetrics are the documented metric names the agent serves without plugins.
var specMetrics = []string{
	"keystone_agent_info",
	"keystone_component_state",
	"keystone_component_restarts_total",
	"keystone_component_cpu_seconds_total",
	"keystone_component_memory_rss_bytes",
	"keystone_deployments_total",
	"keystone_deployment_duration_seconds",
	"keystone_mqtt_connected",
	"keystone_outbox_pending",
	"keystone_artifact_cache_bytes",
}

// scrape fetches url and parses it as the Prometheus text format.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the /metrics output is not valid Prometheus text: %v", err)
	}
	return fams
}

// sample finds the value of the sample of family name with the given labels.
func sample(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// The metrics read real components at scrape time: a state gauge per state
// (1 only for the current one), restarts, CPU seconds that grow and RSS; the
// deployment counters follow the bus; the output parses as valid Prometheus
// text and carries every documented metric name.
func TestMetricsFromRealComponents(t *testing.T) {
	sup := newSupervisor(t)
	done := filepath.Join(t.TempDir(), "burned")
	busy := scriptComponent(t, "com.example.busy",
		fmt.Sprintf("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; : > %s; exec sleep 1000", done))
	busy.Recipe.Lifecycle.Run.Health = &recipes.Health{
		Check:            "cmd:test -f " + done,
		Interval:         recipes.Duration{Duration: 50 * time.Millisecond},
		Timeout:          recipes.Duration{Duration: 2 * time.Second},
		FailureThreshold: 1000,
	}
	idle := scriptComponent(t, "com.example.idle", "exec sleep 1000")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := sup.Apply(ctx, []*supervisor.Component{busy, idle}); err != nil {
		t.Fatal(err)
	}
	if err := sup.WaitReady(ctx, []string{"com.example.busy", "com.example.idle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sup.StopComponent(ctx, "com.example.idle"); err != nil {
		t.Fatal(err)
	}

	m, err := newMetrics(metricsConfig{
		Context: ctx, Version: "1.2.3", Components: sup, CPUSeconds: processCPUSeconds,
		OutboxPending: func(context.Context) (int, error) { return 7, nil },
		CacheBytes:    func(context.Context) (int64, error) { return 4096, nil },
		MQTTConnected: func() bool { return false },
		Logger:        discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	bus := events.New(nil)
	bctx, stopBus := context.WithCancel(ctx)
	sub := bus.Subscribe(bctx, 16)
	counted := goOwned(func() { m.count(sub) })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	status := func(id, s string, at time.Time) events.Event {
		return events.Event{At: at, Kind: events.KindDeployment, Deployment: id, Reason: s, Detail: map[string]string{"status": s}}
	}
	bus.Publish(status("d1", "QUEUED", t0))
	bus.Publish(status("d1", "IN_PROGRESS", t0))
	bus.Publish(events.Event{At: t0.Add(time.Second), Kind: events.KindDeployment, Deployment: "d1", Step: "start", Detail: map[string]string{"status": "done"}})
	bus.Publish(status("d1", "SUCCEEDED", t0.Add(4*time.Second)))
	bus.Publish(status("d2", "IN_PROGRESS", t0))
	bus.Publish(status("d2", "FAILED", t0.Add(2*time.Second)))
	stopBus()
	counted()

	srv := httptest.NewServer(m.handler)
	defer srv.Close()
	fams := scrape(t, srv.URL)
	for _, name := range specMetrics {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	want := func(name string, labels map[string]string, v float64) {
		t.Helper()
		got, ok := sample(t, fams, name, labels)
		if !ok || got != v {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, v)
		}
	}
	want("keystone_agent_info", map[string]string{"version": "1.2.3"}, 1)
	for s := supervisor.StateNew; s <= supervisor.StateBroken; s++ {
		v := 0.0
		if s == supervisor.StateRunning {
			v = 1
		}
		want("keystone_component_state", map[string]string{"component": "com.example.busy", "state": s.String()}, v)
	}
	want("keystone_component_state", map[string]string{"component": "com.example.idle", "state": "STOPPED"}, 1)
	want("keystone_component_state", map[string]string{"component": "com.example.idle", "state": "RUNNING"}, 0)
	want("keystone_component_restarts_total", map[string]string{"component": "com.example.busy"}, 0)
	want("keystone_component_memory_rss_bytes", map[string]string{"component": "com.example.idle"}, 0)
	want("keystone_deployments_total", map[string]string{"status": "SUCCEEDED"}, 1)
	want("keystone_deployments_total", map[string]string{"status": "FAILED"}, 1)
	want("keystone_deployments_total", map[string]string{"status": "CANCELED"}, 0)
	want("keystone_deployment_duration_seconds", nil, 2)
	if h := fams["keystone_deployment_duration_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleSum() != 6 {
		t.Errorf("deployment duration sum = %v, want 6 (4s + 2s)", h.GetSampleSum())
	}
	want("keystone_mqtt_connected", nil, 0)
	want("keystone_outbox_pending", nil, 7)
	want("keystone_artifact_cache_bytes", nil, 4096)

	if cpu, _ := sample(t, fams, "keystone_component_cpu_seconds_total", map[string]string{"component": "com.example.busy"}); cpu <= 0 {
		t.Errorf("cpu seconds of a component that counted to 300000 = %v, want > 0", cpu)
	}
	if rss, _ := sample(t, fams, "keystone_component_memory_rss_bytes", map[string]string{"component": "com.example.busy"}); rss <= 0 {
		t.Errorf("rss of a running component = %v, want > 0", rss)
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Error("Go and process collectors missing")
	}
}

// The CPU counter of a component never goes down when its process is
// replaced: the earlier process's seconds are carried.
func TestCPUCounterMonotonicAcrossRestarts(t *testing.T) {
	readings := map[int]float64{100: 3, 200: 1}
	c := newComponentCollector(metricsConfig{CPUSeconds: func(pid int) float64 { return readings[pid] }})
	st := supervisor.Status{Name: "com.example.a", Pid: 100}
	if v := c.cpuSeconds(st); v != 3 {
		t.Fatalf("first process: %v", v)
	}
	st.Pid = 0 // stopped
	if v := c.cpuSeconds(st); v != 3 {
		t.Fatalf("stopped: %v, want 3", v)
	}
	st.Pid = 200 // started again
	if v := c.cpuSeconds(st); v != 4 {
		t.Fatalf("second process: %v, want 3+1", v)
	}
	readings[200] = 0.5 // a reading that went down (pid gone and reused) is ignored
	if v := c.cpuSeconds(st); v != 4 {
		t.Fatalf("after a lower reading: %v, want 4", v)
	}
}

// BenchmarkMetricsScrape50 times one /metrics scrape over HTTP with 50 real
// components running (each a sleeping process: state, restarts, CPU and
// RSS read from /proc at scrape time).
func BenchmarkMetricsScrape50(b *testing.B) {
	const n = 50
	sup := newSupervisor(b)
	comps := make([]*supervisor.Component, n)
	names := make([]string, n)
	for i := range comps {
		names[i] = fmt.Sprintf("com.example.c%02d", i)
		comps[i] = scriptComponent(b, names[i], "exec sleep 1000")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := sup.Apply(ctx, comps); err != nil {
		b.Fatal(err)
	}
	if err := sup.WaitReady(ctx, names); err != nil {
		b.Fatal(err)
	}
	m, err := newMetrics(metricsConfig{
		Context: ctx, Version: "bench", Components: sup, CPUSeconds: processCPUSeconds,
		Logger: discardLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(m.handler)
	defer srv.Close()
	client := srv.Client()
	var bytes int64
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		resp, err := client.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		k, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("scrape: %d %v", resp.StatusCode, err)
		}
		lat = append(lat, time.Since(start))
		bytes = k
	}
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds())/1000, "ms/p50")
	b.ReportMetric(float64(p99.Microseconds())/1000, "ms/p99")
	b.ReportMetric(float64(bytes), "bytes/scrape")
}
