package plugin

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseOutputReadsTheContractExample(t *testing.T) {
	doc := `{"metrics":[{"name":"tx","type":"counter","value":1234,"help":"POS transactions",
	             "labels":{"pos":"12"}},
	            {"name":"queue_len","type":"gauge","value":3},
	            {"name":"latency_seconds","type":"histogram",
	             "buckets":{"0.1":4,"0.5":9,"+Inf":10},"sum":2.7,"count":10}],
	 "state":{"last_offset":1301}}`
	out, err := ParseOutput([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Metrics) != 3 || !out.HasState || string(out.State) != `{"last_offset":1301}` {
		t.Fatalf("output = %+v", out)
	}
	tx, q, h := out.Metrics[0], out.Metrics[1], out.Metrics[2]
	if tx.Name != "tx" || tx.Type != Counter || tx.Value != 1234 || tx.Help != "POS transactions" || tx.Labels["pos"] != "12" {
		t.Errorf("tx = %+v", tx)
	}
	if q.Type != Gauge || q.Value != 3 || q.Labels != nil {
		t.Errorf("queue_len = %+v", q)
	}
	want := []Bucket{{0.1, 4}, {0.5, 9}, {math.Inf(1), 10}}
	if h.Type != Histogram || h.Sum != 2.7 || h.Count != 10 || len(h.Buckets) != 3 {
		t.Fatalf("histogram = %+v", h)
	}
	for i, b := range want {
		if h.Buckets[i] != b {
			t.Errorf("bucket %d = %+v, want %+v", i, h.Buckets[i], b)
		}
	}
}

func TestParseOutputStateAbsentNullAndCountDefault(t *testing.T) {
	out, err := ParseOutput([]byte(`{"metrics":[]}`))
	if err != nil || out.HasState || len(out.Metrics) != 0 {
		t.Fatalf("no state: %+v, %v", out, err)
	}
	out, err = ParseOutput([]byte(`{"metrics":[],"state":null}`))
	if err != nil || !out.HasState || string(out.State) != "null" {
		t.Fatalf("null state: %+v, %v (null must clear the kept state)", out, err)
	}
	out, err = ParseOutput([]byte(`{"metrics":[{"name":"h","type":"histogram","buckets":{"1":1,"+Inf":3},"sum":4}]}`))
	if err != nil || out.Metrics[0].Count != 3 {
		t.Fatalf("count from +Inf: %+v, %v", out, err)
	}
	// Numbers as strings are read, so that "NaN" can be refused by name.
	out, err = ParseOutput([]byte(`{"metrics":[{"name":"g","type":"gauge","value":"2.5"}]}`))
	if err != nil || out.Metrics[0].Value != 2.5 {
		t.Fatalf("string number: %+v, %v", out, err)
	}
}

func TestParseOutputRefusesInvalidDocumentsWithAClearReason(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // every one must be in the message
	}{
		{"empty", "  \n", []string{"empty output"}},
		{"not JSON", "load=0.5", []string{"bad JSON", "invalid character"}},
		{"truncated", `{"metrics":[{"name":"a"`, []string{"bad JSON", "unexpected end"}},
		{"python NaN", `{"metrics":[{"name":"a","type":"gauge","value":NaN}]}`,
			[]string{"NaN at byte", "must be finite"}},
		{"python Infinity", `{"metrics":[{"name":"a","type":"gauge","value":-Infinity}]}`,
			[]string{"-Infinity at byte"}},
		{"NaN as string", `{"metrics":[{"name":"a","type":"gauge","value":"NaN"}]}`,
			[]string{`metrics[0] "a": value NaN is not finite`}},
		{"overflow", `{"metrics":[{"name":"a","type":"gauge","value":1e999}]}`,
			[]string{"value +Inf is not finite"}},
		{"two documents", `{"metrics":[]} {"metrics":[]}`, []string{"more than one document"}},
		{"no metrics", `{"state":{}}`, []string{`no "metrics" array`}},
		{"unknown field", `{"metrics":[{"name":"a","type":"gauge","vaule":1}]}`, []string{`unknown field "vaule"`}},
		{"wrong JSON type", `{"metrics":[{"name":"a","type":"gauge","value":true}]}`, []string{"true is not a number"}},
		{"no name", `{"metrics":[{"type":"gauge","value":1}]}`, []string{"metrics[0]: name is missing"}},
		{"no type", `{"metrics":[{"name":"a","value":1}]}`, []string{`metrics[0] "a": type is missing`}},
		{"bad type", `{"metrics":[{"name":"a","type":"summary","value":1}]}`, []string{`type "summary" is not counter`}},
		{"no value", `{"metrics":[{"name":"a","type":"counter"}]}`, []string{"a counter needs a value"}},
		{"negative counter", `{"metrics":[{"name":"tx","type":"counter","value":-1}]}`,
			[]string{`metrics[0] "tx": counter value -1 is negative`}},
		{"gauge with buckets", `{"metrics":[{"name":"a","type":"gauge","value":1,"sum":2}]}`, []string{"histograms only"}},
		{"histogram with value", `{"metrics":[{"name":"h","type":"histogram","value":1,"buckets":{"+Inf":1},"sum":1}]}`,
			[]string{"not a value"}},
		{"non-monotone buckets", `{"metrics":[{"name":"h","type":"histogram","buckets":{"0.1":5,"0.5":3,"+Inf":6},"sum":1}]}`,
			[]string{"buckets are not cumulative: 0.5 has 3, less than 5 in 0.1"}},
		{"+Inf below a bucket", `{"metrics":[{"name":"h","type":"histogram","buckets":{"1":5,"+Inf":4},"sum":1}]}`,
			[]string{"+Inf has 4, less than 5 in 1"}},
		{"no +Inf", `{"metrics":[{"name":"h","type":"histogram","buckets":{"0.1":1},"sum":1}]}`, []string{`buckets lack "+Inf"`}},
		{"no buckets", `{"metrics":[{"name":"h","type":"histogram","sum":1}]}`, []string{"needs buckets"}},
		{"bad bound", `{"metrics":[{"name":"h","type":"histogram","buckets":{"fast":1,"+Inf":1},"sum":1}]}`,
			[]string{`bucket bound "fast"`}},
		{"same bound twice", `{"metrics":[{"name":"h","type":"histogram","buckets":{"0.5":1,"0.50":1,"+Inf":1},"sum":1}]}`,
			[]string{`bucket bounds "0.5" and "0.50" are the same`}},
		{"fractional count", `{"metrics":[{"name":"h","type":"histogram","buckets":{"+Inf":1.5},"sum":1}]}`,
			[]string{"not a whole number"}},
		{"no sum", `{"metrics":[{"name":"h","type":"histogram","buckets":{"+Inf":1}}]}`, []string{"needs a sum"}},
		{"NaN sum", `{"metrics":[{"name":"h","type":"histogram","buckets":{"+Inf":1},"sum":"NaN"}]}`, []string{"sum NaN is not finite"}},
		{"count differs", `{"metrics":[{"name":"h","type":"histogram","buckets":{"+Inf":10},"sum":1,"count":11}]}`,
			[]string{"count 11 differs from the +Inf bucket 10"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ParseOutput([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", out)
			}
			if out != nil {
				t.Errorf("returned a partial output with the error: %+v", out)
			}
			var oe *OutputError
			if !errors.As(err, &oe) || !errors.Is(err, ErrInvalidOutput) {
				t.Errorf("error %T %v is not an *OutputError wrapping ErrInvalidOutput", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseOutputListsEveryProblem(t *testing.T) {
	doc := `{"metrics":[{"name":"a","type":"counter","value":-1},{"name":"b","type":"gauge","value":"NaN"},` +
		`{"name":"c","type":"histogram","buckets":{"1":2,"+Inf":1},"sum":1}]}`
	_, err := ParseOutput([]byte(doc))
	var oe *OutputError
	if !errors.As(err, &oe) || len(oe.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	many := &OutputError{Problems: make([]string, 12)}
	if !strings.HasSuffix(many.Error(), "(and 4 more)") {
		t.Errorf("long list not cut: %q", many.Error())
	}
}
