package deploy_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// timeDeploy submits m and measures, from the submission, when the last of
// watch became RUNNING and when the deployment SUCCEEDED.
func timeDeploy(b *testing.B, r *rig, m manifest, watch []string) (running, succeeded time.Duration) {
	b.Helper()
	r.log.drain()
	start := time.Now()
	acc, err := r.eng.Submit(context.Background(), r.request(m))
	if err != nil {
		b.Fatal(err)
	}
	d := r.wait(acc.ID)
	succeeded = time.Since(start)
	mustSucceed(b, d)
	up := map[string]time.Time{}
	for _, e := range r.log.drain() {
		if e.Kind == events.KindTransition && e.To == "RUNNING" && slices.Contains(watch, e.Component) {
			up[e.Component] = e.At
		}
	}
	if len(up) != len(watch) {
		b.Fatalf("saw %d of %d components become RUNNING", len(up), len(watch))
	}
	var last time.Time
	for _, at := range up {
		if at.After(last) {
			last = at
		}
	}
	return last.Sub(start), succeeded
}

func p50(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}

// BenchmarkDeploy20 deploys 20 trivial components onto an empty device:
// the time until all are RUNNING, and until the deployment SUCCEEDED (which
// includes the engine's one-second stability wait, DefaultStableFor).
func BenchmarkDeploy20(b *testing.B) {
	r := newRig(b, func(o *rigOptions) { o.stableFor = deploy.DefaultStableFor })
	var comps []spec
	var names []string
	for i := range 20 {
		name := fmt.Sprintf("com.bench.c%02d", i)
		comps = append(comps, spec{name: name, version: "1.0.0"})
		names = append(names, name)
	}
	var running, succeeded []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for j := range comps {
			comps[j].version = fmt.Sprintf("1.0.%d", i)
		}
		run, ok := timeDeploy(b, r, manifest{comps: comps}, names)
		running, succeeded = append(running, run), append(succeeded, ok)
		b.StopTimer()
		mustSucceed(b, r.deploy(manifest{})) // back to nothing
		b.StartTimer()
	}
	b.ReportMetric(p50(running), "ms/running")
	b.ReportMetric(p50(succeeded), "ms/succeeded")
}

// BenchmarkLeafBump bumps the version of the leaf of a three-layer set (c
// needs b needs a): only the leaf restarts.
func BenchmarkLeafBump(b *testing.B) {
	r := newRig(b, func(o *rigOptions) { o.stableFor = deploy.DefaultStableFor })
	comps := []spec{
		{name: "com.bench.a", version: "1.0.0"},
		{name: "com.bench.b", version: "1.0.0", deps: []string{"com.bench.a"}},
		{name: "com.bench.c", version: "1.0.0", deps: []string{"com.bench.b"}},
	}
	mustSucceed(b, r.deploy(manifest{comps: comps}))
	var running, succeeded []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		comps[2].version = fmt.Sprintf("1.1.%d", i)
		run, ok := timeDeploy(b, r, manifest{comps: comps}, []string{"com.bench.c"})
		running, succeeded = append(running, run), append(succeeded, ok)
	}
	b.ReportMetric(p50(running), "ms/running")
	b.ReportMetric(p50(succeeded), "ms/succeeded")
}
