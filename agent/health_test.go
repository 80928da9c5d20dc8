package agent

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
)

// The health check fails when the supervisor loop does not answer or the
// store fails its integrity check.
func TestHealthCheckFailures(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	running := newSupervisor(t)
	h := &healthCheck{sup: running, store: st, now: time.Now}
	if err := h.check(ctx); err != nil {
		t.Fatalf("healthy parts: %v", err)
	}

	notStarted, err := supervisor.New(supervisor.Config{Launcher: &supervisor.ProcessLauncher{}})
	if err != nil {
		t.Fatal(err)
	}
	h = &healthCheck{sup: notStarted, store: st, now: time.Now}
	if err := h.check(ctx); err == nil || !strings.Contains(err.Error(), "supervisor loop") {
		t.Fatalf("health with a supervisor that does not run: %v", err)
	}

	st.Close()
	h = &healthCheck{sup: running, store: st, now: time.Now}
	if err := h.check(ctx); err == nil || !strings.Contains(err.Error(), "store") {
		t.Fatalf("health with a closed store: %v", err)
	}
}
