package plugin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// needTool finds an ecosystem binary. In CI (CI=true) a missing one fails
// the test: .ci/run installs it (Debian packages prometheus and
// prometheus-node-exporter).
func needTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed; CI must install it (see .ci/run)", names[0])
	}
	t.Skipf("SKIPPED LOUDLY: %s is not installed (apt-get install prometheus prometheus-node-exporter); CI runs this check", names[0])
	return ""
}

// exporterWithPlugins is an exporter as the agent has it: two plugins with
// counters, gauges and a histogram, one stale, one failing.
func exporterWithPlugins(t *testing.T, dir string) *Exporter {
	t.Helper()
	clock := newFakeClock()
	e := newExporter(t, dir, clock)
	e.Add("com.example.pos", 10*time.Second)
	e.Add("com.example.never", 10*time.Second)
	mustRecord(t, e, "com.example.pos", posMetrics(t, "1234"))
	if err := e.Record("com.example.never", OutcomeError, 2*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestPromtoolAcceptsTheExporterOnAMetricsEndpoint(t *testing.T) {
	promtool := needTool(t, "promtool")
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		exporterWithPlugins(t, ""),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	if !bytes.Contains(body, []byte(`pos_latency_seconds_bucket{store_id="kyiv-001",le="+Inf"} 10`)) {
		t.Fatalf("scrape lacks the plugin's histogram:\n%s", body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n--- scraped:\n%s", err, out, body)
	}
}

func TestNodeExporterServesThePluginTextfile(t *testing.T) {
	nodeExporter := needTool(t, "prometheus-node-exporter", "node_exporter")
	dir := openDir(t)
	exporterWithPlugins(t, dir)
	assertOnlyFiles(t, dir, "com.example.pos.prom")

	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, nodeExporter,
		"--web.listen-address="+addr,
		"--collector.disable-defaults",
		"--collector.textfile",
		"--collector.textfile.directory="+dir,
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_, _ = cmd.Process.Wait()
	}()

	body := waitScrape(t, "http://"+addr+"/metrics", exited, &logs)
	for _, want := range []string{
		`pos_transactions_total{pos="12",store_id="kyiv-001"} 1234`,
		`pos_queue_len{store_id="kyiv-001"} 3`,
		`pos_latency_seconds_bucket{store_id="kyiv-001",le="0.5"} 9`,
		`pos_latency_seconds_count{store_id="kyiv-001"} 10`,
		"node_textfile_scrape_error 0",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("node_exporter does not serve %q:\n%s", want, body)
		}
	}
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// waitScrape polls url until it answers 200 (node_exporter is up), the
// process exits, or 30 seconds pass.
func waitScrape(t *testing.T, url string, exited <-chan struct{}, logs *bytes.Buffer) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("HTTP %d %v", resp.StatusCode, rerr)
		}
		last = err
		select {
		case <-exited:
			t.Fatalf("node_exporter exited: %s", logs.String())
		case <-deadline:
			t.Fatalf("node_exporter did not answer in 30s: %v\n%s", last, logs.String())
		case <-tick.C:
		}
	}
}
