package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// timedApply runs keystonectl deploy apply -f manifest --wait and returns
// how long it took: from starting keystonectl until it returned after the
// agent reported the deployment SUCCEEDED, every component RUNNING.
func (d *device) timedApply(manifest string) time.Duration {
	d.t.Helper()
	start := time.Now()
	r := d.ctl("deploy", "apply", "-f", manifest, "--wait")
	took := time.Since(start)
	if r.code != 0 {
		d.t.Fatalf("deploy apply: %s", r)
	}
	return took
}

// reportDurations reports the median and the slowest of ds in
// milliseconds, the figures the benchmark is about.
func reportDurations(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(ds[len(ds)/2]), "ms/p50")
	b.ReportMetric(ms(ds[len(ds)-1]), "ms/max")
}

// twenty is 20 trivial components (svc without a health check, no
// dependencies), all at version.
func twenty(version string) []comp {
	out := make([]comp, 20)
	for i := range out {
		out[i] = comp{short: fmt.Sprintf("c%02d", i+1), version: version}
	}
	return out
}

// BenchmarkDeployApply20 times keystonectl deploy apply --wait of 20
// trivial components onto a device that runs none of them: signature
// checks, artifact fetch (file://, sha256), install, start, and the wait
// until all 20 are RUNNING and the deployment SUCCEEDED.
func BenchmarkDeployApply20(b *testing.B) {
	d := newDevice(b, deviceOptions{})
	d.start()
	set := twenty("1.0.0")
	idle := []comp{{short: "idle", version: "1.0.0"}}
	var took []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		d.ctlOK("deploy", "apply", "-f", d.writeDeployment(fmt.Sprintf("idle-%d", i), manifestOptions{}, idle...), "--wait")
		manifest := d.writeDeployment(fmt.Sprintf("twenty-%d", i), manifestOptions{}, set...)
		b.StartTimer()
		took = append(took, d.timedApply(manifest))
		b.StopTimer()
		d.requireRunning(set...)
		b.StartTimer()
	}
	b.StopTimer()
	reportDurations(b, took)
	d.stop()
}

// BenchmarkLeafBump times keystonectl deploy apply --wait of a version bump
// of one leaf (a component nothing depends on, itself depending on
// another) among 20 running components: only the leaf restarts.
func BenchmarkLeafBump(b *testing.B) {
	d := newDevice(b, deviceOptions{})
	d.start()
	set := twenty("1.0.0")
	leaf := len(set) - 1
	set[leaf].hard = []string{set[0].short}
	d.ctlOK("deploy", "apply", "-f", d.writeDeployment("base", manifestOptions{}, set...), "--wait")
	before := d.requireRunning(set...)
	var took []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		set[leaf].version = fmt.Sprintf("1.0.%d", i+1)
		manifest := d.writeDeployment(fmt.Sprintf("bump-%d", i), manifestOptions{}, set...)
		b.StartTimer()
		took = append(took, d.timedApply(manifest))
		b.StopTimer()
		after := d.requireRunning(set...)
		for short, pid := range after {
			if short != set[leaf].short && pid != before[short] {
				b.Errorf("%s restarted (pid %d -> %d) on a bump of %s", short, before[short], pid, set[leaf].short)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportDurations(b, took)
	d.stop()
}
