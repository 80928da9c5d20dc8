package plugin

import (
	"errors"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
)

func mustMapping(t *testing.T, m recipes.Mapping) *Mapping {
	t.Helper()
	mp, err := NewMapping(m)
	if err != nil {
		t.Fatal(err)
	}
	return mp
}

func mustParse(t *testing.T, doc string) []Metric {
	t.Helper()
	out, err := ParseOutput([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return out.Metrics
}

func TestMappingRenamesPrefixesAndLabels(t *testing.T) {
	m := mustMapping(t, recipes.Mapping{
		Prefix: "pos_",
		Labels: map[string]string{"store_id": "kyiv-001"},
		Rename: map[string]string{"tx": "transactions_total"},
	})
	in := mustParse(t, `{"metrics":[{"name":"tx","type":"counter","value":5,"labels":{"pos":"12"}},
		{"name":"queue_len","type":"gauge","value":3,"help":"Queue"},
		{"name":"queue_len","type":"gauge","value":4,"labels":{"q":"b"}},
		{"name":"latency_seconds","type":"histogram","buckets":{"0.5":1,"+Inf":2},"sum":1}]}`)
	out, err := m.Apply(in)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Name != "pos_transactions_total" || out[0].Labels["pos"] != "12" || out[0].Labels["store_id"] != "kyiv-001" {
		t.Errorf("tx mapped to %+v", out[0])
	}
	if out[1].Name != "pos_queue_len" || out[2].Help != "Queue" {
		t.Errorf("help of a name must reach all its series: %+v / %+v", out[1], out[2])
	}
	if out[3].Name != "pos_latency_seconds" || len(out[3].Buckets) != 2 || out[3].Labels["store_id"] != "kyiv-001" {
		t.Errorf("histogram mapped to %+v", out[3])
	}
	if in[0].Name != "tx" || len(in[0].Labels) != 1 {
		t.Errorf("Apply modified its input: %+v", in[0])
	}
}

func TestMappingRefusesWhatPrometheusWould(t *testing.T) {
	cases := []struct {
		name    string
		mapping recipes.Mapping
		doc     string
		want    string
	}{
		{"bad metric name", recipes.Mapping{}, `{"metrics":[{"name":"tx-count","type":"gauge","value":1}]}`,
			`name "tx-count" is not a valid Prometheus metric name`},
		{"leading digit", recipes.Mapping{}, `{"metrics":[{"name":"1x","type":"gauge","value":1}]}`, `name "1x"`},
		{"bad rename target", recipes.Mapping{Rename: map[string]string{"a": "a b"}},
			`{"metrics":[{"name":"a","type":"gauge","value":1}]}`, `(exported as "a b")`},
		{"reserved prefix", recipes.Mapping{Prefix: "keystone_"}, `{"metrics":[{"name":"a","type":"gauge","value":1}]}`,
			`reserved for the agent's own metrics`},
		{"bad label name", recipes.Mapping{}, `{"metrics":[{"name":"a","type":"gauge","value":1,"labels":{"pos-id":"1"}}]}`,
			`label name "pos-id"`},
		{"reserved label name", recipes.Mapping{}, `{"metrics":[{"name":"a","type":"gauge","value":1,"labels":{"__name__":"x"}}]}`,
			`label name "__name__"`},
		{"label clash", recipes.Mapping{Labels: map[string]string{"site": "x"}},
			`{"metrics":[{"name":"a","type":"gauge","value":1,"labels":{"site":"y"}}]}`, `label "site" is set by the plugin and by plugin.mapping.labels`},
		{"le on histogram", recipes.Mapping{},
			`{"metrics":[{"name":"h","type":"histogram","buckets":{"+Inf":1},"sum":1,"labels":{"le":"1"}}]}`, `label "le" is reserved`},
		{"type clash", recipes.Mapping{}, `{"metrics":[{"name":"a","type":"gauge","value":1},{"name":"a","type":"counter","value":1,"labels":{"x":"1"}}]}`,
			`is a counter, but metrics[0] of the same name is a gauge`},
		{"help clash", recipes.Mapping{}, `{"metrics":[{"name":"a","type":"gauge","value":1,"help":"x"},{"name":"a","type":"gauge","value":1,"help":"y","labels":{"l":"1"}}]}`,
			`help "y" differs`},
		{"duplicate series", recipes.Mapping{}, `{"metrics":[{"name":"a","type":"gauge","value":1},{"name":"a","type":"gauge","value":2}]}`,
			`the same series (name and labels) as metrics[0]`},
		{"duplicate after rename", recipes.Mapping{Rename: map[string]string{"b": "a"}},
			`{"metrics":[{"name":"a","type":"gauge","value":1},{"name":"b","type":"gauge","value":2}]}`, `the same series`},
		{"histogram suffix clash", recipes.Mapping{},
			`{"metrics":[{"name":"h","type":"histogram","buckets":{"+Inf":1},"sum":1},{"name":"h_count","type":"gauge","value":1}]}`,
			`clashes with the _count series of histogram "h"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := mustMapping(t, tc.mapping).Apply(mustParse(t, tc.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", out)
			}
			if out != nil || !errors.Is(err, ErrInvalidOutput) {
				t.Errorf("out %v, err %v: want nothing and ErrInvalidOutput", out, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestNewMappingChecksTheRecipe(t *testing.T) {
	for _, tc := range []struct {
		m    recipes.Mapping
		want string
	}{
		{recipes.Mapping{Prefix: "pos-"}, `plugin.mapping.prefix "pos-"`},
		{recipes.Mapping{Labels: map[string]string{"store id": "1"}}, `label name "store id"`},
		{recipes.Mapping{Rename: map[string]string{"tx": ""}}, "both names are required"},
	} {
		if _, err := NewMapping(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewMapping(%+v) = %v, want %q", tc.m, err, tc.want)
		}
	}
}
