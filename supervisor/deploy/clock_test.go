package deploy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

func TestHealthTimeoutIsKeptOnTheClock(t *testing.T) {
	clock := fakeclock.New(time.Time{})
	r := newRig(t, func(o *rigOptions) { o.clock = clock })
	comps := []spec{{name: "com.test.sick", version: "1.0.0", health: "cmd:false"}}
	acc, err := r.eng.Submit(context.Background(), r.request(manifest{id: "sick", comps: comps, healthTimeout: "45s"}))
	if err != nil {
		t.Fatal(err)
	}
	clock.WaitDelay(t, 45*time.Second)
	r.log.waitFor("sick RUNNING", func(e events.Event) bool {
		return e.Kind == events.KindTransition && e.Component == "com.test.sick" && e.To == "RUNNING"
	})

	// Just before the deadline the deployment still waits, and says for what.
	clock.Advance(45*time.Second - time.Millisecond)
	d, err := r.eng.Get(context.Background(), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != "IN_PROGRESS" || !strings.Contains(d.WaitingFor, "RUNNING and healthy: com.test.sick (") ||
		d.Since.IsZero() || !d.Since.Equal(clock.Now().Add(-45*time.Second+time.Millisecond)) {
		t.Fatalf("before the deadline: %s waiting for %q since %v", d.Status, d.WaitingFor, d.Since)
	}
	clock.Advance(time.Millisecond)
	d = r.wait(acc.ID)
	if d.Status != "FAILED" || !d.RolledBack || d.ErrorCode != deploy.CodeHealthTimeout ||
		!strings.Contains(d.Error, "health_timeout 45s") {
		t.Fatalf("after the deadline: %s rolled_back=%v %s: %s", d.Status, d.RolledBack, d.ErrorCode, d.Error)
	}
	r.running(map[string]string{}) // rolled back to nothing: the first deployment had no predecessor
}
