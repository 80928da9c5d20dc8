package graph_test

import (
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes/graph"
)

// BenchmarkResolve1000 resolves a random 1,000-component graph (three
// versions of each on offer, 1–3 ranged dependencies per component).
func BenchmarkResolve1000(b *testing.B) {
	roots, avail := generated(1000)
	var edges int
	start := time.Now()
	for b.Loop() {
		g, err := graph.Resolve(roots, avail)
		if err != nil {
			b.Fatal(err)
		}
		edges = 0
		for _, n := range g.Names() {
			edges += len(g.Dependencies(n))
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/resolve")
	b.ReportMetric(1000, "components")
	b.ReportMetric(float64(edges), "edges")
}
