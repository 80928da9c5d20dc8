package fleet

import (
	"fmt"
	"slices"
	"testing"
)

// Ring assignment depends only on rollout and device ids: the same for any
// order of the targets, every ring gets at least one device while devices
// are left, and each ring ends at its fraction (rounded up).
func TestAssignRingsStable(t *testing.T) {
	fractions := []float64{0.01, 0.1, 1}
	for _, n := range []int{1, 2, 3, 5, 20, 100, 1000} {
		var devs []string
		for i := range n {
			devs = append(devs, fmt.Sprintf("dev-%d", i))
		}
		ordered, rings := AssignRings("roll-1", devs, fractions)
		rev := slices.Clone(devs)
		slices.Reverse(rev)
		ordered2, rings2 := AssignRings("roll-1", rev, fractions)
		if !slices.Equal(ordered, ordered2) || !slices.Equal(rings, rings2) {
			t.Fatalf("n=%d: assignment depends on the targets' order", n)
		}
		sizes := make([]int, len(fractions))
		for _, r := range rings {
			sizes[r]++
		}
		for k, size := range sizes {
			if size == 0 && k < n {
				t.Errorf("n=%d: ring %d is empty: %v", n, k, sizes)
			}
		}
		if n == 1000 && !slices.Equal(sizes, []int{10, 90, 900}) {
			t.Errorf("n=1000: sizes %v, want [10 90 900]", sizes)
		}
		if n == 20 && !slices.Equal(sizes, []int{1, 1, 18}) {
			t.Errorf("n=20: sizes %v, want [1 1 18]", sizes)
		}
	}
	// Another rollout shuffles the devices differently.
	a, _ := AssignRings("roll-1", []string{"a", "b", "c", "d", "e", "f"}, []float64{1})
	b, _ := AssignRings("roll-2", []string{"a", "b", "c", "d", "e", "f"}, []float64{1})
	if slices.Equal(a, b) {
		t.Errorf("two rollouts rank the devices alike: %v", a)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{ID: "r1", Job: Template{Kind: "deployment", Manifest: "m"}, Targets: []string{"d1"}}
	for _, tc := range []func(*Config){
		func(c *Config) { c.ID = "r/1" },
		func(c *Config) { c.Job.Manifest = "" },
		func(c *Config) { c.Job.Kind = "cancel" },
		func(c *Config) { c.Rings = []float64{0.5, 0.2, 1} },
		func(c *Config) { c.Rings = []float64{0.1, 0.5} },
		func(c *Config) { c.MaxFailureRate = 2 },
		func(c *Config) { c.OnHalt = "explode" },
		func(c *Config) { c.Targets = []string{"d 1"} },
	} {
		cfg := good
		tc(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
}
