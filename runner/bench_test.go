package runner

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// benchSpec is a realistic small component: a sleeping child with a
// memory and a pids limit, so every start creates and every exit removes
// cgroups.
var benchSpec = ProcessSpec{Component: "com.example.bench", Command: "/bin/sleep", Args: []string{"300"}, MemoryLimitBytes: 64 << 20, PidsLimit: 64}

// reportPercentiles reports p50 and p99 of samples in milliseconds.
func reportPercentiles(b *testing.B, prefix string, samples []time.Duration) {
	b.Helper()
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), prefix+"ms/p50")
	b.ReportMetric(at(0.99), prefix+"ms/p99")
}

// BenchmarkStartStop: Start (cgroups, the spawner thread or the shim,
// exec) until the target runs, then Stop with SIGTERM until the process is
// reaped and its cgroups gone.
func BenchmarkStartStop(b *testing.B) {
	for _, path := range []string{"direct", "shim"} {
		b.Run("path="+path, func(b *testing.B) {
			e := newEnv(b, "", false)
			e.r.noDirect.Store(path == "shim")
			benchStartStop(b, e)
		})
	}
}

func benchStartStop(b *testing.B, e *testEnv) {
	ctx := context.Background()
	var starts, stops, totals []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		p, _, err := e.run(ctx, benchSpec)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if st := p.Stop(ctx, StopOptions{}); st.Signal != "SIGTERM" {
			b.Fatalf("status = %+v", st)
		}
		t2 := time.Now()
		starts, stops, totals = append(starts, t1.Sub(t0)), append(stops, t2.Sub(t1)), append(totals, t2.Sub(t0))
	}
	b.StopTimer()
	reportPercentiles(b, "start-", starts)
	reportPercentiles(b, "stop-", stops)
	reportPercentiles(b, "", totals)
}

// BenchmarkKillToExit is the restart building block: SIGKILL to the child
// until the runner reports the exit (reaped, cgroup removed, output
// drained), which is when a supervisor may start it again.
func BenchmarkKillToExit(b *testing.B) {
	e := newEnv(b, "", false)
	ctx := context.Background()
	var samples []time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		p, _, err := e.run(ctx, benchSpec)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := p.Signal(syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		<-p.Done()
		samples = append(samples, time.Since(t0))
		if st := p.Wait(); st.Signal != "SIGKILL" {
			b.Fatalf("status = %+v", st)
		}
	}
	b.StopTimer()
	reportPercentiles(b, "", samples)
}

// BenchmarkStartAfterIdle: Start after 50 ms of quiet, as a crash usually
// comes, rather than back to back. The kernel makes a move of a running
// process into a cgroup wait for an RCU grace period once the machine has
// been quiet; a start that needs one shows it here and not in
// BenchmarkStartStop.
func BenchmarkStartAfterIdle(b *testing.B) {
	e := newEnv(b, "", false)
	ctx := context.Background()
	var starts []time.Duration
	for b.Loop() {
		b.StopTimer()
		quiet := time.NewTimer(50 * time.Millisecond)
		<-quiet.C
		b.StartTimer()
		t0 := time.Now()
		p, _, err := e.run(ctx, benchSpec)
		if err != nil {
			b.Fatal(err)
		}
		starts = append(starts, time.Since(t0))
		b.StopTimer()
		p.Stop(ctx, StopOptions{Signal: syscall.SIGKILL})
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, "start-", starts)
}

// BenchmarkStart50Together starts 50 components at once, as an agent does
// at its start, until every program runs; then stops them all.
func BenchmarkStart50Together(b *testing.B) {
	for _, path := range []string{"direct", "shim"} {
		b.Run("path="+path, func(b *testing.B) {
			e := newEnv(b, "", false)
			e.r.noDirect.Store(path == "shim")
			ctx := context.Background()
			var took []time.Duration
			for b.Loop() {
				procs := make([]*Process, 50)
				errs := make([]error, 50)
				var wg sync.WaitGroup
				t0 := time.Now()
				for i := range procs {
					wg.Go(func() {
						spec := benchSpec
						spec.Component = fmt.Sprintf("com.example.bench%02d", i)
						procs[i], _, errs[i] = e.run(ctx, spec)
					})
				}
				wg.Wait()
				took = append(took, time.Since(t0))
				for i, p := range procs {
					if errs[i] != nil {
						b.Fatal(errs[i])
					}
					wg.Go(func() { p.Stop(ctx, StopOptions{}) })
				}
				wg.Wait()
			}
			reportPercentiles(b, "all-50-", took)
		})
	}
}
