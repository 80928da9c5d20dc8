package supervisor_test

import (
	"fmt"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor"
)

// A crash loop under restart_policy = "always": the delay doubles up to
// max, and the restart past max_restarts.count within the window is BROKEN.
func ExampleRestarts() {
	r := supervisor.NewRestarts(supervisor.RestartPolicy{
		Mode: recipes.RestartAlways, Initial: time.Second, Max: 4 * time.Second,
		Count: 4, Window: 10 * time.Minute,
	}, nil) // nil: no jitter
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	crash := supervisor.Outcome{Kind: supervisor.OutcomeExited, Exit: supervisor.ExitStatus{Code: 1}, Ran: time.Second}
	for range 5 {
		decision, wait, reason := r.Decide(now, crash)
		fmt.Printf("%s %v: %s\n", decision, wait, reason)
		now = now.Add(wait + time.Second)
	}
	// Output:
	// restart 1s: exited with status 1; restart 1 in 1s
	// restart 2s: exited with status 1; restart 2 in 2s
	// restart 4s: exited with status 1; restart 3 in 4s
	// restart 4s: exited with status 1; restart 4 in 4s
	// break 0s: exited with status 1; more than 4 restarts within 10m0s (max_restarts)
}
