package plugin

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/keystone-edge/keystone/recipes"
)

// Mapping turns a plugin's metric names into exported ones (a recipe's
// [plugin.mapping]): a renamed metric takes its new name, then every name gets
// the prefix, and every series the constant labels. The zero value maps
// nothing. Build one with NewMapping, which checks it.
type Mapping struct {
	// Prefix is put before every (renamed) name; "" = none.
	Prefix string
	// Rename maps a plugin's name to the name used before the prefix; nil
	// = none.
	Rename map[string]string
	// Labels are added to every series; nil = none. A plugin label of the
	// same name is an error, not overridden.
	Labels map[string]string
}

// NewMapping checks a recipe's (rendered) mapping: the prefix must be made
// of metric name characters, constant label names must be valid, and a
// rename must name something.
func NewMapping(m recipes.Mapping) (*Mapping, error) {
	var probs []string
	if m.Prefix != "" && !validMetricName(m.Prefix) {
		probs = append(probs, fmt.Sprintf("plugin.mapping.prefix %q: only [a-zA-Z0-9_:] allowed, not starting with a digit", m.Prefix))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		if p := checkLabelName(k); p != "" {
			probs = append(probs, "plugin.mapping.labels: "+p)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.Rename)) {
		if k == "" || m.Rename[k] == "" {
			probs = append(probs, fmt.Sprintf("plugin.mapping.rename: %q = %q: both names are required", k, m.Rename[k]))
		}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(probs, "; "))
	}
	return &Mapping{Prefix: m.Prefix, Rename: maps.Clone(m.Rename), Labels: maps.Clone(m.Labels)}, nil
}

// Name is the exported name of a plugin's metric name.
func (m *Mapping) Name(name string) string {
	if to, ok := m.Rename[name]; ok {
		name = to
	}
	return m.Prefix + name
}

// Apply maps validated metrics (see ParseOutput) to the series exported,
// in the same order, and checks the result against Prometheus' rules:
// valid metric and label names, no name under "keystone_", no "le" label on
// a histogram, one type and one help per name, no series twice, and no
// histogram whose _bucket, _sum or _count series another metric's name
// would clash with. The input is not modified. The error is an
// *OutputError listing every problem: a document that breaks a rule is
// refused as a whole.
func (m *Mapping) Apply(in []Metric) ([]Metric, error) {
	type family struct {
		typ  Type
		help string
		at   int // index of the first metric of the name
	}
	var probs []string
	out := make([]Metric, len(in))
	families := map[string]*family{}
	series := map[string]int{}
	for i, src := range in {
		mt := src
		mt.Name = m.Name(src.Name)
		id := fmt.Sprintf("metrics[%d] %q", i, src.Name)
		if mt.Name != src.Name {
			id += fmt.Sprintf(" (exported as %q)", mt.Name)
		}
		bad := func(format string, a ...any) { probs = append(probs, id+": "+fmt.Sprintf(format, a...)) }
		if p := checkMetricName(mt.Name); p != "" {
			bad("%s", p)
		}
		mt.Labels = make(map[string]string, len(src.Labels)+len(m.Labels))
		for _, k := range slices.Sorted(maps.Keys(src.Labels)) {
			if p := checkLabelName(k); p != "" {
				bad("%s", p)
			} else if _, constant := m.Labels[k]; constant {
				bad("label %q is set by the plugin and by plugin.mapping.labels", k)
			}
			mt.Labels[k] = src.Labels[k]
		}
		maps.Copy(mt.Labels, m.Labels)
		if _, ok := mt.Labels["le"]; ok && mt.Type == Histogram {
			bad(`label "le" is reserved for histogram buckets`)
		}
		if len(mt.Labels) == 0 {
			mt.Labels = nil
		}
		mt.Buckets = slices.Clone(src.Buckets)
		out[i] = mt

		f, seen := families[mt.Name]
		switch {
		case !seen:
			families[mt.Name] = &family{typ: mt.Type, help: mt.Help, at: i}
		case f.typ != mt.Type:
			bad("is a %s, but metrics[%d] of the same name is a %s", mt.Type, f.at, f.typ)
		case mt.Help != "" && f.help != "" && mt.Help != f.help:
			bad("help %q differs from %q of metrics[%d] of the same name", mt.Help, f.help, f.at)
		case f.help == "":
			f.help = mt.Help
		}
		key := seriesKey(mt.Name, mt.Labels)
		if j, dup := series[key]; dup {
			bad("the same series (name and labels) as metrics[%d]", j)
		} else {
			series[key] = i
		}
	}
	for _, name := range slices.Sorted(maps.Keys(families)) {
		if families[name].typ != Histogram {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if other, clash := families[name+suffix]; clash {
				probs = append(probs, fmt.Sprintf("metrics[%d] %q: clashes with the %s series of histogram %q (metrics[%d])",
					other.at, name+suffix, suffix, name, families[name].at))
			}
		}
	}
	if len(probs) > 0 {
		return nil, &OutputError{Problems: probs}
	}
	// Fill a help given only on some series of a name into all of them.
	for i := range out {
		if out[i].Help == "" {
			out[i].Help = families[out[i].Name].help
		}
	}
	return out, nil
}

// seriesKey identifies a series by its name and sorted labels.
func seriesKey(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(labels[k])
	}
	return b.String()
}
