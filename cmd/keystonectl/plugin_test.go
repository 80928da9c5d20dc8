package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
)

func samplePluginRun() []api.Metric {
	return []api.Metric{
		{Name: "pos_transactions_total", Type: "counter", Help: "POS transactions", Value: 1301,
			Labels: map[string]string{"store_id": "kyiv-001", "pos": "12"}},
		{Name: "pos_queue_len", Type: "gauge", Value: 3},
		{Name: "pos_latency_seconds", Type: "histogram", Labels: map[string]string{"store_id": "kyiv-001"},
			Buckets: map[string]float64{"0.1": 4, "+Inf": 10, "0.5": 9}, Sum: 2.7, Count: 10},
	}
}

func TestPluginRun(t *testing.T) {
	f := newFakeAgent(t)
	f.handle("POST /v1/plugins/com.example.pos/run", 200, samplePluginRun())
	cli := cliRun{sock: f.sock}

	r := cli.run(t, "plugin", "run", "com.example.pos")
	r.expect(t, exitOK, []string{
		"SERIES", "TYPE", "VALUE",
		`pos_transactions_total{pos="12",store_id="kyiv-001"}`, "counter", "1301",
		"pos_queue_len ", "gauge",
		`pos_latency_seconds{store_id="kyiv-001"}`, "count 10, sum 2.7 (le 0.1: 4, le 0.5: 9, le +Inf: 10)",
	}, none)
	if n := len(f.sent("POST", "/v1/plugins/com.example.pos/run")); n != 1 {
		t.Errorf("%d run requests, want 1", n)
	}

	r = cli.run(t, "-o", "json", "plugin", "run", "com.example.pos")
	r.expect(t, exitOK, nil, none)
	var got []api.Metric
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, samplePluginRun()) {
		t.Errorf("JSON output is not the agent's answer unchanged: %v\n%s", err, r.stdout)
	}
}

func TestPluginRunFailures(t *testing.T) {
	f := newFakeAgent(t)
	f.handle("POST /v1/plugins/com.example.bad/run", http.StatusBadGateway, api.Error{
		Message: "plugin com.example.bad: plugin: failed: exited with code 3; stderr: cannot reach the till", Code: api.CodePluginFailed})
	cli := cliRun{sock: f.sock}
	r := cli.run(t, "plugin", "run", "com.example.bad")
	r.expect(t, exitError, none, []string{"plugin run: ", "exited with code 3", "cannot reach the till", "[PLUGIN_FAILED]"})

	r = cli.run(t, "plugin", "run", "com.example.nothing")
	r.expect(t, exitError, none, []string{`no component "com.example.nothing"`, "[NOT_FOUND]"})

	r = cli.run(t, "plugin", "run")
	r.expect(t, exitUsage, none, []string{"takes one argument"})
	if strings.Contains(r.stderr, "panic") {
		t.Fatal(r.stderr)
	}
}

func TestPlainNumbers(t *testing.T) {
	for v, want := range map[float64]string{
		1234000: "1234000", 3: "3", 0.1: "0.1", 1.5e9: "1500000000", 0: "0", -2.5: "-2.5",
		1e-9: "1e-09", 3e21: "3e+21",
	} {
		if got := plainNumber(v); got != want {
			t.Errorf("plainNumber(%v) = %q, want %q", v, got, want)
		}
	}
}
