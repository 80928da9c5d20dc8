package e2e

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
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

// BenchmarkMQTTJob times signed deployment jobs end to end through a real
// broker (mosquitto when installed): from the controller publishing a job
// (a config change of one running component) until it receives the job's
// SUCCEEDED status. Each round is 50 jobs; it reports p50 and p99.
func BenchmarkMQTTJob(b *testing.B) {
	f := newFleet(b, mqtttest.Options{})
	f.dev.start()
	f.connect()
	one := []comp{{short: "one", version: "1.0.0", greeting: "g-0"}}
	f.send(f.job("warm", f.publish(one...)))
	f.wait("warm", message.StatusSucceeded)
	var took []time.Duration
	n := 0
	for b.Loop() {
		for range 50 {
			n++
			one[0].greeting = fmt.Sprintf("g-%d", n)
			j := f.job(fmt.Sprintf("job-%d", n), f.publish(one...))
			start := time.Now()
			f.send(j)
			f.wait(j.JobID, message.StatusSucceeded)
			took = append(took, time.Since(start))
		}
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "ms/p50")
	b.ReportMetric(ms(took[len(took)*99/100]), "ms/p99")
	f.dev.stop()
}

// BenchmarkAgentPSSWithMQTT reports the agent's proportional set size
// (/proc/PID/smaps_rollup) running three components, local-only and with
// its MQTT connection up, in the same run.
func BenchmarkAgentPSSWithMQTT(b *testing.B) {
	var local, connected float64
	for b.Loop() {
		d := newDevice(b, deviceOptions{})
		d.start()
		d.ctlOK("deploy", "apply", "-f", d.writeDeployment("three", manifestOptions{}, threeComponents(d)...), "--wait")
		local = pssMiB(b, d.agent.cmd.Process.Pid)
		d.stop()

		f := newFleet(b, mqtttest.Options{})
		f.dev.start()
		f.connect()
		set := threeComponents(f.dev)
		f.send(f.job("three", f.publish(set...)))
		f.wait("three", message.StatusSucceeded)
		connected = pssMiB(b, f.dev.agent.cmd.Process.Pid)
		f.dev.stop()
	}
	b.ReportMetric(local, "MiB-PSS-local")
	b.ReportMetric(connected, "MiB-PSS-mqtt")
	b.ReportMetric(connected/local, "mqtt/local")
}

// pssMiB reads a process's PSS in MiB.
func pssMiB(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		tb.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Pss:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		tb.Fatalf("no Pss in smaps_rollup of %d", pid)
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return float64(kb) / 1024
}

// BenchmarkReloadHandOver re-executes an agent with ten running
// components in place twenty times (SIGHUP, as systemctl reload) and
// reports the hand-over: from the old image's last write before its exec
// until every component runs again under the new image, as the agent logs
// it; and the agent's PSS before the first and after the last (settled
// for a second each time).
func BenchmarkReloadHandOver(b *testing.B) {
	const reloads = 20
	var (
		took          []time.Duration
		before, after float64
	)
	for b.Loop() {
		d := newDevice(b, deviceOptions{})
		d.start()
		set := tenProcesses()
		d.ctlOK("deploy", "apply", "-f", d.writeDeployment("v1", manifestOptions{}, set...), "--wait")
		time.Sleep(time.Second)
		before = pssMiB(b, d.agent.cmd.Process.Pid)
		for i := 1; i <= reloads; i++ {
			d.reload(i)
			d.waitFor("the hand-over to finish", time.Minute, func() bool {
				return countLines(d.agent.log, `"msg":"components taken over"`) >= i
			})
		}
		time.Sleep(time.Second)
		after = pssMiB(b, d.agent.cmd.Process.Pid)
		data, err := os.ReadFile(d.agent.log)
		if err != nil {
			b.Fatal(err)
		}
		re := regexp.MustCompile(`"msg":"components taken over".*"took_ms":([0-9.]+)`)
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			ms, _ := strconv.ParseFloat(m[1], 64)
			took = append(took, time.Duration(ms*float64(time.Millisecond)))
		}
		d.stop()
	}
	reportDurations(b, took)
	b.ReportMetric(before, "MiB-PSS-before")
	b.ReportMetric(after, "MiB-PSS-after")
}
