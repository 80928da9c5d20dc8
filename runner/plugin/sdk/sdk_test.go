package sdk_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/runner/plugin"
	"github.com/keystone-edge/keystone/runner/plugin/sdk"
)

func TestOutputIsWhatTheAgentAccepts(t *testing.T) {
	ctx, err := sdk.ReadContext(strings.NewReader(`{"component":"com.example.pos","version":"1.0.0","device_id":"pos-12",` +
		`"config":{"store_id":"kyiv-001","every":5},"state":{"offset":1234},"secrets":{"DB_PASS":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Offset int }
	if err := ctx.LoadState(&st); err != nil || st.Offset != 1234 {
		t.Fatalf("state %+v, %v", st, err)
	}
	if ctx.ConfigString("store_id", "") != "kyiv-001" || ctx.ConfigNumber("every", 0) != 5 || ctx.ConfigString("missing", "d") != "d" {
		t.Errorf("config = %v", ctx.Config)
	}
	var out sdk.Output
	out.Counter("tx", 1301).Help("POS transactions").Label("pos", "12")
	out.Gauge("queue_len", 3)
	out.Histogram("latency_seconds", map[float64]uint64{0.1: 4, 0.5: 9, math.Inf(1): 10}, 2.7)
	st.Offset = 1301
	if err := out.SetState(st); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := out.Write(&b); err != nil {
		t.Fatal(err)
	}
	doc, err := plugin.ParseOutput(b.Bytes())
	if err != nil {
		t.Fatalf("the agent refuses the SDK's output: %v\n%s", err, b.String())
	}
	if len(doc.Metrics) != 3 || !doc.HasState || string(doc.State) != `{"Offset":1301}` {
		t.Fatalf("parsed %+v", doc)
	}
	tx, h := doc.Metrics[0], doc.Metrics[2]
	if tx.Type != plugin.Counter || tx.Value != 1301 || tx.Labels["pos"] != "12" || tx.Help != "POS transactions" {
		t.Errorf("tx = %+v", tx)
	}
	if h.Type != plugin.Histogram || h.Count != 10 || h.Sum != 2.7 || h.Buckets[1].Count != 9 {
		t.Errorf("histogram = %+v", h)
	}
}

func TestFirstRunAndNoStateKeepTheirMeaning(t *testing.T) {
	ctx, err := sdk.ReadContext(strings.NewReader(`{"component":"x","state":null}`))
	if err != nil {
		t.Fatal(err)
	}
	st := struct{ Runs int }{Runs: 7}
	if err := ctx.LoadState(&st); err != nil || st.Runs != 7 || ctx.Config == nil || ctx.Secrets == nil {
		t.Fatalf("null state must leave v alone: %+v %v", st, err)
	}
	var b bytes.Buffer
	if err := new(sdk.Output).Write(&b); err != nil || strings.TrimSpace(b.String()) != `{"metrics":[]}` {
		t.Fatalf("empty output = %q, %v (no state key: the agent keeps the state)", b.String(), err)
	}
}

func TestWriteRefusesNonFiniteValues(t *testing.T) {
	var out sdk.Output
	out.Gauge("a", math.NaN())
	out.Histogram("h", map[float64]uint64{math.Inf(1): 1}, math.Inf(1))
	err := out.Write(new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "metric a: value NaN is not finite") || !strings.Contains(err.Error(), "metric h: sum +Inf") {
		t.Fatalf("err = %v", err)
	}
}
