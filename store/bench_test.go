package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

// BenchmarkCheckpointDurable measures durable deployment checkpoints: each
// iteration is one AppendStep, which returns only after the WAL is synced
// (synchronous=FULL). Reports checkpoints/s and per-checkpoint latency.
func BenchmarkCheckpointDurable(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b)
	if err := s.CreateDeployment(ctx, store.Deployment{ID: "bench", Status: store.DeploymentInProgress}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		if _, err := s.AppendStep(ctx, "bench", store.Step{Name: "install", Component: "com.example.hello", Status: store.StepDone}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "checkpoints/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "ms/p50")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "ms/p99")
}
