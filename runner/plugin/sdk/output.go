package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Output collects a run's metrics and state; Write prints the document.
// The zero value is ready to use.
type Output struct {
	metrics  []*Metric
	state    json.RawMessage
	hasState bool
}

// Metric is one series in an Output; its methods return it for chaining.
type Metric struct {
	name    string
	typ     string
	help    string
	labels  map[string]string
	value   float64
	buckets map[float64]uint64
	sum     float64
}

// Counter adds a counter: a value that only goes up (never negative).
func (o *Output) Counter(name string, value float64) *Metric {
	return o.add(&Metric{name: name, typ: "counter", value: value})
}

// Gauge adds a gauge: a value that goes up and down.
func (o *Output) Gauge(name string, value float64) *Metric {
	return o.add(&Metric{name: name, typ: "gauge", value: value})
}

// Histogram adds a histogram from cumulative bucket counts by upper bound
// (the +Inf bucket, math.Inf(1), is the total count and is required) and
// the sum of the observations.
func (o *Output) Histogram(name string, buckets map[float64]uint64, sum float64) *Metric {
	b := make(map[float64]uint64, len(buckets))
	for k, v := range buckets {
		b[k] = v
	}
	return o.add(&Metric{name: name, typ: "histogram", buckets: b, sum: sum})
}

func (o *Output) add(m *Metric) *Metric {
	o.metrics = append(o.metrics, m)
	return m
}

// Help sets the metric's description.
func (m *Metric) Help(help string) *Metric {
	m.help = help
	return m
}

// Label sets one label of the series.
func (m *Metric) Label(name, value string) *Metric {
	if m.labels == nil {
		m.labels = map[string]string{}
	}
	m.labels[name] = value
	return m
}

// SetState keeps v (anything encoding/json can encode) for the next run's
// Context.State. Without SetState the state kept so far stays as it is;
// SetState(nil) clears it.
func (o *Output) SetState(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("plugin state: %w", err)
	}
	o.state, o.hasState = b, true
	return nil
}

// wireMetric is a metric as the agent reads it.
type wireMetric struct {
	Name    string             `json:"name"`
	Type    string             `json:"type"`
	Help    string             `json:"help,omitempty"`
	Labels  map[string]string  `json:"labels,omitempty"`
	Value   *float64           `json:"value,omitempty"`
	Buckets map[string]float64 `json:"buckets,omitempty"`
	Sum     *float64           `json:"sum,omitempty"`
}

// Write prints the document on w (os.Stdout). It refuses values that are
// not finite, which the agent would refuse too.
func (o *Output) Write(w io.Writer) error {
	doc := struct {
		Metrics []wireMetric    `json:"metrics"`
		State   json.RawMessage `json:"state,omitempty"`
	}{Metrics: make([]wireMetric, 0, len(o.metrics))}
	var errs []error
	for _, m := range o.metrics {
		wm := wireMetric{Name: m.name, Type: m.typ, Help: m.help, Labels: m.labels}
		if m.typ == "histogram" {
			wm.Buckets = make(map[string]float64, len(m.buckets))
			for bound, n := range m.buckets {
				wm.Buckets[boundString(bound)] = float64(n)
			}
			sum := m.sum
			wm.Sum = &sum
			if math.IsNaN(sum) || math.IsInf(sum, 0) {
				errs = append(errs, fmt.Errorf("metric %s: sum %v is not finite", m.name, sum))
			}
		} else {
			v := m.value
			wm.Value = &v
			if math.IsNaN(v) || math.IsInf(v, 0) {
				errs = append(errs, fmt.Errorf("metric %s: value %v is not finite", m.name, v))
			}
		}
		doc.Metrics = append(doc.Metrics, wm)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if o.hasState {
		doc.State = o.state
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode plugin output: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// boundString writes a bucket bound as the contract does ("0.5", "+Inf").
func boundString(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
