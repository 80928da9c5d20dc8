package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Event retention in the store.
const (
	// eventsKept is how many events the store keeps; older ones are pruned.
	eventsKept = 10_000
	// pruneEvery is how many appends pass between prunes.
	pruneEvery = 500
	// recorderBuffer is how far the recorder may fall behind the bus before
	// it loses events (the bus never waits for it).
	recorderBuffer = 4096
	// recordBatch is the most events written in one transaction.
	recordBatch = 256
	// storeWriteTimeout bounds one write of events.
	storeWriteTimeout = 10 * time.Second
)

// recorder writes every event of the bus to the store, so that transitions
// and deployment progress outlive the agent, and keeps the history bounded.
// It also answers the API's reads of that history.
type recorder struct {
	store   *store.Store
	log     *slog.Logger
	lastSeq atomic.Int64
}

// newRecorder prunes the history to its bound and learns where it ends.
func newRecorder(ctx context.Context, st *store.Store, log *slog.Logger) (*recorder, error) {
	if err := st.PruneEvents(ctx, eventsKept); err != nil {
		return nil, fmt.Errorf("prune events: %w", err)
	}
	last, err := st.LastEventSeq(ctx)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	r := &recorder{store: st, log: log}
	r.lastSeq.Store(last)
	return r, nil
}

// run records the events of sub until the channel is closed (its
// subscription's context ended) and drained. Writes are not cut short when
// ctx ends: what was published before the end is still recorded.
func (r *recorder) run(ctx context.Context, sub <-chan events.Event) {
	base := context.WithoutCancel(ctx)
	n := 0
	batch := make([]events.Event, 0, recordBatch)
	for e := range sub {
		// What has queued up meanwhile goes in the same transaction: a
		// burst (50 components starting) costs one sync of the disk, not
		// one per event, and leaves the writer to the others sooner.
		batch = append(batch[:0], e)
		open := true
		for open && len(batch) < recordBatch {
			select {
			case e, ok := <-sub:
				if !ok {
					open = false
					break
				}
				batch = append(batch, e)
			default:
				open = false
			}
		}
		ctx, cancel := context.WithTimeout(base, storeWriteTimeout)
		r.record(ctx, batch)
		if n += len(batch); n >= pruneEvery {
			n = 0
			if err := r.store.PruneEvents(ctx, eventsKept); err != nil {
				r.log.Error("prune events", "err", err)
			}
		}
		cancel()
	}
}

// record writes batch in one transaction.
func (r *recorder) record(ctx context.Context, batch []events.Event) {
	var last int64
	err := r.store.Tx(ctx, func(tx *store.Tx) error {
		for _, e := range batch {
			if e.Dropped > 0 {
				r.log.Warn("event recorder fell behind; events lost", "lost", e.Dropped)
			}
			seq, err := tx.AppendEvent(ctx, toStoreEvent(e))
			if err != nil {
				return fmt.Errorf("%s event of %q: %w", e.Kind, e.Component, err)
			}
			last = seq
		}
		return nil
	})
	if err != nil {
		r.log.Error("record events", "events", len(batch), "err", err)
		return
	}
	r.lastSeq.Store(last)
}

// Recent returns up to limit of the latest recorded events, oldest first.
func (r *recorder) Recent(ctx context.Context, limit int) ([]store.Event, error) {
	from := max(r.lastSeq.Load()-int64(limit), 0)
	return r.store.Events(ctx, from, limit)
}

// ComponentEvents returns the latest limit events about one component.
func (r *recorder) ComponentEvents(ctx context.Context, component string, limit int) ([]store.Event, error) {
	return r.store.ComponentEvents(ctx, component, limit)
}

// eventExtra is what a store.Event keeps of a bus event beyond its columns.
type eventExtra struct {
	Deployment string            `json:"deployment,omitempty"`
	Step       string            `json:"step,omitempty"`
	Detail     map[string]string `json:"detail,omitempty"`
}

func toStoreEvent(e events.Event) store.Event {
	se := store.Event{
		At: e.At, Component: e.Component, Kind: string(e.Kind),
		FromState: e.From, ToState: e.To, Reason: e.Reason,
	}
	if e.Deployment != "" || e.Step != "" || len(e.Detail) > 0 {
		se.Detail, _ = json.Marshal(eventExtra{Deployment: e.Deployment, Step: e.Step, Detail: e.Detail})
	}
	return se
}

func fromStoreEvent(se store.Event) events.Event {
	e := events.Event{
		At: se.At, Kind: events.Kind(se.Kind), Component: se.Component,
		From: se.FromState, To: se.ToState, Reason: se.Reason,
	}
	var x eventExtra
	if len(se.Detail) > 0 && json.Unmarshal(se.Detail, &x) == nil {
		e.Deployment, e.Step, e.Detail = x.Deployment, x.Step, x.Detail
	}
	return e
}
