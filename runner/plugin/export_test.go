package plugin

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/recipes"
)

// newFakeClock returns a clock tests move by hand.
func newFakeClock() *fakeclock.Clock { return fakeclock.New(time.Unix(1_700_000_000, 0)) }

// scrape gathers the exporter through a registry, as /metrics does, and
// returns the text exposition; a gather error fails the test.
func scrape(t testing.TB, e *Exporter) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(e); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func wantLines(t testing.TB, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, l+"\n") {
			t.Errorf("missing line %q in:\n%s", l, text)
		}
	}
}

func noLines(t testing.TB, text string, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		if strings.Contains(text, "\n"+p) || strings.HasPrefix(text, p) {
			t.Errorf("unexpected %q in:\n%s", p, text)
		}
	}
}

// posMetrics are the plugin contract's example (docs/plugins.md) mapped with a
// prefix, a rename and a constant label.
func posMetrics(t testing.TB, tx string) []Metric {
	t.Helper()
	m, err := NewMapping(recipes.Mapping{
		Prefix: "pos_", Labels: map[string]string{"store_id": "kyiv-001"},
		Rename: map[string]string{"tx": "transactions_total"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseOutput([]byte(`{"metrics":[{"name":"tx","type":"counter","value":` + tx + `,"help":"POS transactions","labels":{"pos":"12"}},
		{"name":"queue_len","type":"gauge","value":3},
		{"name":"latency_seconds","type":"histogram","buckets":{"0.1":4,"0.5":9,"+Inf":10},"sum":2.7,"count":10}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := m.Apply(out.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func newExporter(t testing.TB, dir string, clock *fakeclock.Clock) *Exporter {
	t.Helper()
	e, err := NewExporter(ExporterConfig{TextfileDir: dir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestExporterServesLastGoodValuesAndRunCounts(t *testing.T) {
	clock := newFakeClock()
	e := newExporter(t, "", clock)
	e.Add("com.example.pos", 10*time.Second)
	text := scrape(t, e)
	wantLines(t, text,
		`keystone_plugin_up{plugin="com.example.pos"} 0`,
		`keystone_plugin_runs_total{plugin="com.example.pos",result="ok"} 0`,
		`keystone_plugin_runs_total{plugin="com.example.pos",result="error"} 0`,
		`keystone_plugin_runs_total{plugin="com.example.pos",result="skipped"} 0`,
	)
	noLines(t, text, "pos_")

	if err := e.Record("com.example.pos", OutcomeOK, 20*time.Millisecond, posMetrics(t, "1234")); err != nil {
		t.Fatal(err)
	}
	text = scrape(t, e)
	wantLines(t, text,
		"# HELP pos_transactions_total POS transactions",
		"# TYPE pos_transactions_total counter",
		`pos_transactions_total{pos="12",store_id="kyiv-001"} 1234`,
		"# HELP pos_queue_len pos_queue_len, reported by the plugin com.example.pos.",
		"# TYPE pos_queue_len gauge",
		`pos_queue_len{store_id="kyiv-001"} 3`,
		"# TYPE pos_latency_seconds histogram",
		`pos_latency_seconds_bucket{store_id="kyiv-001",le="0.1"} 4`,
		`pos_latency_seconds_bucket{store_id="kyiv-001",le="0.5"} 9`,
		`pos_latency_seconds_bucket{store_id="kyiv-001",le="+Inf"} 10`,
		`pos_latency_seconds_sum{store_id="kyiv-001"} 2.7`,
		`pos_latency_seconds_count{store_id="kyiv-001"} 10`,
		`keystone_plugin_up{plugin="com.example.pos"} 1`,
		`keystone_plugin_runs_total{plugin="com.example.pos",result="ok"} 1`,
		`keystone_plugin_run_duration_seconds_count{plugin="com.example.pos"} 1`,
	)

	// A failed run counts, and serves the last good values, not a part of
	// its own.
	clock.Advance(10 * time.Second)
	if err := e.Record("com.example.pos", OutcomeError, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Record("com.example.pos", OutcomeSkipped, 0, nil); err != nil {
		t.Fatal(err)
	}
	text = scrape(t, e)
	wantLines(t, text,
		`pos_transactions_total{pos="12",store_id="kyiv-001"} 1234`,
		`keystone_plugin_up{plugin="com.example.pos"} 1`,
		`keystone_plugin_runs_total{plugin="com.example.pos",result="error"} 1`,
		`keystone_plugin_runs_total{plugin="com.example.pos",result="skipped"} 1`,
		`keystone_plugin_run_duration_seconds_count{plugin="com.example.pos"} 2`,
	)

	// Three intervals after the last good run, the values are dropped.
	clock.Advance(20*time.Second + time.Millisecond)
	text = scrape(t, e)
	wantLines(t, text, `keystone_plugin_up{plugin="com.example.pos"} 0`,
		`keystone_plugin_runs_total{plugin="com.example.pos",result="ok"} 1`)
	noLines(t, text, "pos_")

	// A good run brings them back, with new values.
	if err := e.Record("com.example.pos", OutcomeOK, time.Millisecond, posMetrics(t, "1301")); err != nil {
		t.Fatal(err)
	}
	wantLines(t, scrape(t, e), `pos_transactions_total{pos="12",store_id="kyiv-001"} 1301`, `keystone_plugin_up{plugin="com.example.pos"} 1`)

	// Added again (a restart): counts and values stay.
	e.Add("com.example.pos", 10*time.Second)
	wantLines(t, scrape(t, e), `keystone_plugin_runs_total{plugin="com.example.pos",result="ok"} 2`)

	// Removed: nothing of it is left.
	if err := e.Remove("com.example.pos"); err != nil {
		t.Fatal(err)
	}
	noLines(t, scrape(t, e), "pos_", "keystone_plugin_up", "keystone_plugin_runs_total{plugin=")
	if err := e.Record("com.example.pos", OutcomeOK, 0, nil); err == nil {
		t.Error("Record of a removed plugin was accepted")
	}
}

func TestExporterLeavesOutConflictingSeriesOfOtherPlugins(t *testing.T) {
	clock := newFakeClock()
	e := newExporter(t, "", clock)
	parse := func(doc string) []Metric {
		out, err := ParseOutput([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return out.Metrics
	}
	e.Add("com.example.a", time.Minute)
	e.Add("com.example.b", time.Minute)
	mustRecord(t, e, "com.example.a", parse(`{"metrics":[{"name":"shared","type":"gauge","value":1,"help":"A's"},{"name":"same","type":"gauge","value":1}]}`))
	mustRecord(t, e, "com.example.b", parse(`{"metrics":[{"name":"shared","type":"counter","value":2},{"name":"same","type":"gauge","value":2},`+
		`{"name":"same","type":"gauge","value":3,"labels":{"k":"v"},"help":"B's"},{"name":"own","type":"gauge","value":4}]}`))
	text := scrape(t, e) // a conflict must never fail the whole scrape
	wantLines(t, text,
		"# HELP shared A's", "# TYPE shared gauge", "shared 1",
		"same 1", `same{k="v"} 3`, "own 4",
	)
	noLines(t, text, "shared 2", "same 2")
}

func mustRecord(t testing.TB, e *Exporter, name string, ms []Metric) {
	t.Helper()
	if err := e.Record(name, OutcomeOK, time.Millisecond, ms); err != nil {
		t.Fatal(err)
	}
}

func TestTextfileIsWrittenAtomicallyAndRemoved(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	e := newExporter(t, dir, clock)
	e.Add("com.example.pos", 10*time.Second)
	file := filepath.Join(dir, "com.example.pos.prom")
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("textfile exists before the first good run: %v", err)
	}
	mustRecord(t, e, "com.example.pos", posMetrics(t, "1234"))
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", st.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("textfile does not parse: %v\n%s", err, b)
	}
	if len(fams) != 3 || fams["pos_transactions_total"].GetMetric()[0].GetCounter().GetValue() != 1234 {
		t.Errorf("textfile families = %v\n%s", fams, b)
	}
	if strings.Contains(string(b), "keystone_") {
		t.Errorf("textfile has the agent's own metrics:\n%s", b)
	}
	assertOnlyFiles(t, dir, "com.example.pos.prom")

	// A failed run while the values are fresh keeps the file.
	clock.Advance(25 * time.Second)
	if err := e.Record("com.example.pos", OutcomeError, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	assertOnlyFiles(t, dir, "com.example.pos.prom")
	// Past three intervals, the next run (failed) removes it.
	clock.Advance(10 * time.Second)
	if err := e.Record("com.example.pos", OutcomeError, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	assertOnlyFiles(t, dir)
	// A good run writes it again; removing the component removes it.
	mustRecord(t, e, "com.example.pos", posMetrics(t, "1301"))
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), `pos_transactions_total{pos="12",store_id="kyiv-001"} 1301`) {
		t.Errorf("rewritten textfile:\n%s", b)
	}
	if err := e.Remove("com.example.pos"); err != nil {
		t.Fatal(err)
	}
	assertOnlyFiles(t, dir)
}

func TestExporterNeedsAnExistingTextfileDir(t *testing.T) {
	if _, err := NewExporter(ExporterConfig{TextfileDir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("a missing textfile_dir was accepted")
	}
}

// assertOnlyFiles fails unless dir holds exactly names (no temp files).
func assertOnlyFiles(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}
