package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
)

// storeCheckEvery is how long a passed integrity check of the store is
// trusted: PRAGMA integrity_check reads every page, too much for every probe.
const storeCheckEvery = 30 * time.Second

// healthCheck answers /healthz and gates the systemd watchdog: the agent is
// healthy when the supervisor loop answers a message and the store passes
// its integrity check. It is safe for concurrent use.
type healthCheck struct {
	// sup is asked to start a component no one can name; only a running
	// loop answers that with ErrNotFound.
	sup   *supervisor.Supervisor
	store *store.Store
	now   func() time.Time

	mu       sync.Mutex
	storeOK  time.Time // when the store last passed
	checking chan struct{}
}

func (h *healthCheck) check(ctx context.Context) error {
	_, err := h.sup.StartComponent(ctx, "")
	if !errors.Is(err, supervisor.ErrNotFound) {
		if err == nil {
			err = errors.New("unexpected answer")
		}
		return fmt.Errorf("supervisor loop not answering: %w", err)
	}
	return h.checkStore(ctx)
}

// checkStore runs the integrity check unless one passed lately; concurrent
// probes share one run.
func (h *healthCheck) checkStore(ctx context.Context) error {
	h.mu.Lock()
	if !h.storeOK.IsZero() && h.now().Sub(h.storeOK) < storeCheckEvery {
		h.mu.Unlock()
		return nil
	}
	if wait := h.checking; wait != nil {
		h.mu.Unlock()
		select {
		case <-wait:
			return h.checkStore(ctx)
		case <-ctx.Done():
			return fmt.Errorf("store check: %w", ctx.Err())
		}
	}
	done := make(chan struct{})
	h.checking = done
	h.mu.Unlock()

	err := h.store.Check(ctx)

	h.mu.Lock()
	h.checking, h.storeOK = nil, time.Time{}
	if err == nil {
		h.storeOK = h.now()
	}
	h.mu.Unlock()
	close(done)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
