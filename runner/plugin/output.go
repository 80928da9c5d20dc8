package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Type is the type of a metric in a plugin's output.
type Type string

// The metric types of the contract.
const (
	Counter   Type = "counter"   // a value that only goes up; never negative
	Gauge     Type = "gauge"     // a value that goes up and down
	Histogram Type = "histogram" // cumulative buckets up to +Inf, with sum and count
)

// Metric is one series: a validated metric of a plugin's output, with the
// name and labels the plugin gave it (see ParseOutput) or, after
// Mapping.Apply, the ones it is exported with.
type Metric struct {
	Name string
	Type Type
	// Help is the plugin's description; "" when it gave none.
	Help string
	// Labels are the series' labels; nil when it has none.
	Labels map[string]string
	// Value is a counter's or gauge's value; 0 for a histogram.
	Value float64
	// Buckets are a histogram's cumulative counts by upper bound,
	// ascending, the last one +Inf; nil for other types.
	Buckets []Bucket
	// Sum is a histogram's sum of observations; 0 for other types.
	Sum float64
	// Count is a histogram's number of observations (its +Inf bucket); 0
	// for other types.
	Count uint64
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperBound float64 // math.Inf(1) for the last
	Count      uint64  // observations <= UpperBound
}

// Output is a plugin's output document, validated.
type Output struct {
	// Metrics are the run's metrics in the order printed; empty is valid.
	Metrics []Metric
	// State is what the plugin wants back as ctx.state next run, as JSON;
	// "null" clears the kept state. Valid only when HasState.
	State json.RawMessage
	// HasState is false when the document has no "state": the kept state
	// stays as it is.
	HasState bool
}

// maxProblems is how many problems an OutputError lists in its message.
const maxProblems = 8

// maxExactCount is the largest count a JSON number (a float64) carries
// exactly.
const maxExactCount = 1 << 53

// OutputError says why a plugin's output document was refused: every
// problem found, each naming the metric it is about. It wraps
// ErrInvalidOutput.
type OutputError struct {
	Problems []string
}

// Error lists the first problems, and how many more there are.
func (e *OutputError) Error() string {
	ps := e.Problems
	more := ""
	if len(ps) > maxProblems {
		more = fmt.Sprintf(" (and %d more)", len(ps)-maxProblems)
		ps = ps[:maxProblems]
	}
	return "invalid output: " + strings.Join(ps, "; ") + more
}

// Unwrap returns ErrInvalidOutput.
func (e *OutputError) Unwrap() error { return ErrInvalidOutput }

// wireOutput and wireMetric are the document as printed.
type wireOutput struct {
	Metrics []wireMetric    `json:"metrics"`
	State   json.RawMessage `json:"state"`
}

type wireMetric struct {
	Name    string            `json:"name"`
	Type    Type              `json:"type"`
	Help    string            `json:"help"`
	Labels  map[string]string `json:"labels"`
	Value   *number           `json:"value"`
	Buckets map[string]number `json:"buckets"`
	Sum     *number           `json:"sum"`
	Count   *number           `json:"count"`
}

// number is a JSON number, or a string holding one (so that "NaN" and
// "+Inf" reach validation and are refused there with a clear reason).
type number float64

func (n *number) UnmarshalJSON(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%s is not a number", b)
	}
	*n = number(f)
	return nil
}

// ParseOutput reads and validates a plugin's output document:
// exactly one JSON object with a "metrics" array and an optional "state";
// unknown fields are refused (a misspelt "vaule" must not pass for a
// metric without a value). Every metric needs a name and a type; counters
// and gauges a finite value (counters not negative); histograms cumulative,
// non-decreasing whole-number buckets that include "+Inf", a finite sum,
// and a count equal to the +Inf bucket when given. Names and labels are
// checked after mapping (see Mapping.Apply). The error is an *OutputError
// listing every problem.
func ParseOutput(data []byte) (*Output, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &OutputError{Problems: []string{"empty output: a plugin must print one JSON document"}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wireOutput
	if err := dec.Decode(&w); err != nil {
		return nil, &OutputError{Problems: []string{"bad JSON: " + describeJSONError(data, err)}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &OutputError{Problems: []string{fmt.Sprintf("bad JSON: more than one document (extra data at byte %d)", dec.InputOffset())}}
	}
	if w.Metrics == nil {
		return nil, &OutputError{Problems: []string{`no "metrics" array`}}
	}
	out := &Output{Metrics: make([]Metric, 0, len(w.Metrics))}
	var probs []string
	for i, wm := range w.Metrics {
		m, ps := wm.validate(i)
		probs = append(probs, ps...)
		out.Metrics = append(out.Metrics, m)
	}
	if len(probs) > 0 {
		return nil, &OutputError{Problems: probs}
	}
	if w.State != nil {
		out.State, out.HasState = w.State, true
	}
	return out, nil
}

// describeJSONError says where a document stops being JSON, and names the
// non-JSON literals some encoders print for NaN and infinities.
func describeJSONError(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		at := min(max(int(se.Offset)-1, 0), len(data))
		if at > 0 && (data[at-1] == '-' || data[at-1] == '+') {
			at-- // the sign was read as the start of a number
		}
		rest := bytes.TrimLeft(data[at:], "+-")
		for _, lit := range []string{"NaN", "Infinity", "inf", "nan"} {
			if bytes.HasPrefix(rest, []byte(lit)) {
				lit = string(data[at:at+len(data[at:])-len(rest)]) + lit
				return fmt.Sprintf("%s at byte %d: values must be finite numbers (JSON has no NaN or Infinity)", lit, at)
			}
		}
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the document ends before it is complete (unexpected end)"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// validate checks one metric and converts it; the problems name it as
// metrics[i] "name".
func (w wireMetric) validate(i int) (Metric, []string) {
	id := fmt.Sprintf("metrics[%d]", i)
	if w.Name != "" {
		id += fmt.Sprintf(" %q", w.Name)
	}
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, id+": "+fmt.Sprintf(format, a...)) }
	m := Metric{Name: w.Name, Type: w.Type, Help: w.Help, Labels: w.Labels}
	if w.Name == "" {
		bad("name is missing")
	}
	switch w.Type {
	case Counter, Gauge:
		switch {
		case w.Value == nil:
			bad("a %s needs a value", w.Type)
		case !finite(float64(*w.Value)):
			bad("value %v is not finite", float64(*w.Value))
		case w.Type == Counter && *w.Value < 0:
			bad("counter value %v is negative", float64(*w.Value))
		default:
			m.Value = float64(*w.Value)
		}
		if w.Buckets != nil || w.Sum != nil || w.Count != nil {
			bad("buckets, sum and count belong to histograms only, not a %s", w.Type)
		}
	case Histogram:
		if w.Value != nil {
			bad("a histogram has buckets, sum and count, not a value")
		}
		buckets, ps := histogramBuckets(w.Buckets)
		for _, p := range ps {
			bad("%s", p)
		}
		m.Buckets = buckets
		switch {
		case w.Sum == nil:
			bad("a histogram needs a sum")
		case !finite(float64(*w.Sum)):
			bad("sum %v is not finite", float64(*w.Sum))
		default:
			m.Sum = float64(*w.Sum)
		}
		if len(ps) == 0 && len(buckets) > 0 {
			m.Count = buckets[len(buckets)-1].Count
			if w.Count != nil {
				if c, ok := wholeCount(float64(*w.Count)); !ok {
					bad("count %v is not a whole number >= 0", float64(*w.Count))
				} else if c != m.Count {
					bad("count %d differs from the +Inf bucket %d", c, m.Count)
				}
			}
		}
	case "":
		bad("type is missing (counter, gauge or histogram)")
	default:
		bad("type %q is not counter, gauge or histogram", w.Type)
	}
	return m, probs
}

// histogramBuckets parses and checks a histogram's buckets: bounds are
// numbers or "+Inf", counts whole numbers, cumulative (not decreasing as
// the bound grows), with a +Inf bucket.
func histogramBuckets(in map[string]number) ([]Bucket, []string) {
	if len(in) == 0 {
		return nil, []string{`a histogram needs buckets, "+Inf" included`}
	}
	var probs []string
	out := make([]Bucket, 0, len(in))
	seen := map[float64]string{}
	for key, n := range in {
		bound, err := strconv.ParseFloat(strings.TrimSpace(key), 64)
		if err != nil || math.IsNaN(bound) || math.IsInf(bound, -1) {
			probs = append(probs, fmt.Sprintf("bucket bound %q is not a number or +Inf", key))
			continue
		}
		if other, dup := seen[bound]; dup {
			probs = append(probs, fmt.Sprintf("bucket bounds %q and %q are the same", min(key, other), max(key, other)))
			continue
		}
		seen[bound] = key
		c, ok := wholeCount(float64(n))
		if !ok {
			probs = append(probs, fmt.Sprintf("bucket %q count %v is not a whole number >= 0", key, float64(n)))
			continue
		}
		out = append(out, Bucket{UpperBound: bound, Count: c})
	}
	slices.SortFunc(out, func(a, b Bucket) int {
		switch {
		case a.UpperBound < b.UpperBound:
			return -1
		case a.UpperBound > b.UpperBound:
			return 1
		}
		return 0
	})
	if _, ok := seen[math.Inf(1)]; !ok {
		probs = append(probs, `buckets lack "+Inf"`)
	}
	if len(probs) > 0 {
		slices.Sort(probs) // map order must not change the message
		return nil, probs
	}
	for i := 1; i < len(out); i++ {
		if out[i].Count < out[i-1].Count {
			return nil, []string{fmt.Sprintf("buckets are not cumulative: %s has %d, less than %d in %s",
				boundString(out[i].UpperBound), out[i].Count, out[i-1].Count, boundString(out[i-1].UpperBound))}
		}
	}
	return out, nil
}

// boundString writes a bucket bound as Prometheus does ("0.5", "+Inf").
func boundString(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// wholeCount converts a count: finite, not negative, whole, and small
// enough to be exact.
func wholeCount(f float64) (uint64, bool) {
	if !finite(f) || f < 0 || f != math.Trunc(f) || f > maxExactCount {
		return 0, false
	}
	return uint64(f), true
}
