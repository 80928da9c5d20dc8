package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/api"
)

func newPluginCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("plugin", "Run metrics plugins on this device",
		`Work with the metrics plugins (kind = plugin components) the local agent
schedules, over the agent's socket.`,
		`  keystonectl plugin run com.example.sysload`)
	cmd.AddCommand(newPluginRunCmd(opts))
	return cmd
}

func newPluginRunCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "run NAME",
		Short: "Run a plugin now and print its mapped metrics",
		Long: `Run a scheduled metrics plugin once, now (after a run in progress, if
any), and print the series it produced as /metrics serves them: names
after the recipe's rename and prefix, labels with the constant labels
added. The run counts like a scheduled one: its values are exported and
the state it returns is kept for the next run.

A run that fails (a timeout, a non-zero exit, output that breaks the
contract) prints why, with the end of the plugin's stderr, and exits 1.

With -o json the answer is the agent's unchanged: a list of {name, type,
help, labels, value} with buckets (by upper bound), sum and count for
histograms.

Exit codes:
  0  the run succeeded and its metrics were printed
  1  the run failed, there is no such plugin or it is not running, or the
     agent could not be asked (the reason is on stderr)
  2  usage error`,
		Example: `  keystonectl plugin run com.example.sysload
  keystonectl -o json plugin run com.example.sysload`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := opts.client()
			defer c.Close()
			ms, err := c.RunPlugin(cmd.Context(), args[0])
			if err != nil {
				return componentError("plugin run", args[0], err)
			}
			if ms == nil {
				ms = []api.Metric{}
			}
			t := table{header: []string{"SERIES", "TYPE", "VALUE"}}
			for _, m := range ms {
				t.rows = append(t.rows, []string{seriesText(m), m.Type, metricValueText(m)})
			}
			return opts.render(ms, t)
		},
	}
}

// seriesText writes a series as Prometheus does: name{label="value",...}.
func seriesText(m api.Metric) string {
	if len(m.Labels) == 0 {
		return m.Name
	}
	parts := make([]string, 0, len(m.Labels))
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		parts = append(parts, k+"="+strconv.Quote(m.Labels[k]))
	}
	return m.Name + "{" + strings.Join(parts, ",") + "}"
}

// metricValueText is a counter's or gauge's value, or a histogram's count,
// sum and cumulative buckets in bound order.
func metricValueText(m api.Metric) string {
	if m.Type != "histogram" {
		return plainNumber(m.Value)
	}
	type bucket struct {
		key   string
		bound float64
	}
	var bs []bucket
	for k := range m.Buckets {
		f, err := strconv.ParseFloat(k, 64)
		if err != nil {
			f = math.Inf(1)
		}
		bs = append(bs, bucket{k, f})
	}
	slices.SortFunc(bs, func(a, b bucket) int {
		switch {
		case a.bound < b.bound:
			return -1
		case a.bound > b.bound:
			return 1
		}
		return strings.Compare(a.key, b.key)
	})
	parts := make([]string, 0, len(bs))
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf("le %s: %s", b.key, plainNumber(m.Buckets[b.key])))
	}
	return fmt.Sprintf("count %d, sum %s (%s)", m.Count, plainNumber(m.Sum), strings.Join(parts, ", "))
}

// plainNumber writes v as people read it, 1234000 rather than 1.234e+06;
// only very large or very small values keep the exponent.
func plainNumber(v float64) string {
	if a := math.Abs(v); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
