package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keystone-edge/keystone/recipes"
)

func quantile(xs []time.Duration, q float64) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkWasmExampleRun measures one run of the example WASM plugin
// (recipes/examples/sysload-wasm) as the agent makes it: a fresh instance
// of the module compiled once (wazero's compiler), the context on stdin,
// three /proc files read through fs_read, the output validated and mapped.
// It reports the latency's p50 and p99 over 200 runs, and the one-time
// compile.
func BenchmarkWasmExampleRun(b *testing.B) {
	module := buildWasm(b, "./recipes/examples/sysload-wasm")
	r, err := recipes.ParseRecipeFile("../../recipes/examples/sysload-wasm.recipe.toml")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	data, err := os.ReadFile(module)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sysload.wasm"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	rendered, err := r.Render(map[string]any{"bin_dir": dir}, recipes.Vars{DeviceID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	const runs = 200
	for b.Loop() {
		e, err := NewWasmEngine(WasmConfig{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		p, err := New(context.Background(), Config{Recipe: rendered, VersionDir: dir, Wasm: e})
		if err != nil {
			b.Fatal(err)
		}
		compile := time.Since(start)
		lat := make([]time.Duration, 0, runs)
		state := json.RawMessage(nil)
		for range runs {
			t0 := time.Now()
			res, err := p.Run(context.Background(), state)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			state = res.State
		}
		_ = p.Close(context.Background())
		_ = e.Close(context.Background())
		b.ReportMetric(msOf(quantile(lat, 0.5)), "ms/p50")
		b.ReportMetric(msOf(quantile(lat, 0.99)), "ms/p99")
		b.ReportMetric(msOf(compile), "ms/compile")
	}
}

// BenchmarkMetricsScrape10kSeries measures a scrape of /metrics served
// through promhttp from a registry holding the Exporter with 10,000 plugin
// series (100 plugins of 100 series: gauges and counters with two labels,
// and histograms of 5 buckets), as Prometheus would scrape the agent
// (gzip accepted). It reports the p50 and p99 of 20 scrapes an iteration.
func BenchmarkMetricsScrape10kSeries(b *testing.B) {
	e, err := NewExporter(ExporterConfig{})
	if err != nil {
		b.Fatal(err)
	}
	series := 0
	for p := range 100 {
		name := fmt.Sprintf("com.example.p%03d", p)
		e.Add(name, time.Minute)
		var ms []Metric
		for i := range 100 {
			labels := map[string]string{"plugin_series": fmt.Sprint(i), "site": "bench"}
			switch i % 10 {
			case 0:
				ms = append(ms, Metric{Name: fmt.Sprintf("p%03d_latency_seconds", p), Type: Histogram, Labels: labels,
					Buckets: []Bucket{{0.01, 1}, {0.1, 5}, {1, 9}, {10, 10}, {math.Inf(1), 10}}, Sum: 3.5, Count: 10})
			case 1, 2, 3:
				ms = append(ms, Metric{Name: fmt.Sprintf("p%03d_events_total", p), Type: Counter, Labels: labels, Value: float64(i * 1000)})
			default:
				ms = append(ms, Metric{Name: fmt.Sprintf("p%03d_level", p), Type: Gauge, Labels: labels, Value: float64(i) / 3})
			}
		}
		series += len(ms)
		if err := e.Record(name, OutcomeOK, time.Millisecond, ms); err != nil {
			b.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	var lat []time.Duration
	var size int64
	for b.Loop() {
		for range 20 { // enough scrapes for a p99 even at -benchtime 1x
			t0 := time.Now()
			resp, err := http.Get(srv.URL)
			if err != nil {
				b.Fatal(err)
			}
			size, err = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("scrape: %d %v", resp.StatusCode, err)
			}
			lat = append(lat, time.Since(t0))
		}
	}
	b.ReportMetric(float64(series), "plugin_series")
	b.ReportMetric(float64(size)/1024, "KiB/scrape")
	b.ReportMetric(msOf(quantile(lat, 0.5)), "ms/p50")
	b.ReportMetric(msOf(quantile(lat, 0.99)), "ms/p99")
}
