package comms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// stateEvery is the least time between two state messages caused by
// component changes.
const stateEvery = time.Second

// lastJobKey is where the store keeps the last job the device finished,
// for the state's last_job.
const lastJobKey = "mqtt.last_job"

// healthy reports whether every component is RUNNING or FINISHED (a device
// with none is healthy).
func healthy(comps []message.ComponentStatus) bool {
	for _, c := range comps {
		if c.State != supervisor.StateRunning.String() && c.State != supervisor.StateFinished.String() {
			return false
		}
	}
	return true
}

// stateDue says how long a state asked for at now must wait, the last one
// having gone at last (zero: never), so that at most one goes per every.
func stateDue(now, last time.Time, every time.Duration) time.Duration {
	if last.IsZero() {
		return 0
	}
	return max(0, last.Add(every).Sub(now))
}

// stateMessage encodes the device's state now; get reads the last job
// from the store (or from the transaction the state is enqueued in).
func (d *Device) stateMessage(ctx context.Context, get func(context.Context, string) ([]byte, error), online bool) ([]byte, error) {
	comps := d.components()
	st := message.State{DeviceID: d.cfg.DeviceID, Online: online, AgentVersion: d.cfg.AgentVersion,
		Groups: slices.Clone(d.cfg.Groups), Components: comps, Healthy: online && healthy(comps), TS: d.cfg.Now().UTC()}
	if st.Groups == nil {
		st.Groups = []string{}
	}
	raw, err := get(ctx, lastJobKey)
	switch {
	case err == nil:
		var last message.LastJob
		if json.Unmarshal(raw, &last) == nil && last.JobID != "" {
			st.LastJob = &last
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("read the last job: %w", err)
	}
	return json.Marshal(st)
}

// enqueueState puts a fresh retained state in the outbox in place of any
// state still waiting there: only the newest matters.
func (d *Device) enqueueState(ctx context.Context, online bool) error {
	return d.cfg.Store.Tx(ctx, func(tx *store.Tx) error {
		doc, err := d.stateMessage(ctx, tx.GetValue, online)
		if err != nil {
			return err
		}
		_, err = tx.ReplaceOutbox(ctx, store.Message{Topic: d.cfg.topics.State(), Payload: doc, QoS: 1, Retain: true})
		return err
	})
}

// requestState asks for a state within the rate limit (a job finished).
func (d *Device) requestState() { signal(d.stateSoon) }

// stateLoop publishes component transitions on …/events and keeps the
// retained state current: at once when a connection comes up, and after
// component changes at most once per stateEvery.
func (d *Device) stateLoop(ctx context.Context, transitions <-chan events.Event) {
	ev := newEventPublisher(d)
	defer ev.flush()
	var (
		last    time.Time // when the last state was enqueued
		pending bool
		timer   *time.Timer
		timerC  <-chan time.Time
	)
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
		}
		timer, timerC = nil, nil
	}
	defer stopTimer()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-transitions:
			if !ok {
				return
			}
			if e.Kind != events.KindTransition {
				continue
			}
			ev.publish(ctx, e)
			pending = true
		case <-d.stateSoon:
			pending = true
		case <-d.stateNow:
			stopTimer()
			last, pending = time.Time{}, true
		case <-timerC:
			timer, timerC = nil, nil
		}
		if !pending || timerC != nil {
			continue
		}
		now := time.Now()
		if wait := stateDue(now, last, stateEvery); wait > 0 {
			timer = time.NewTimer(wait)
			timerC = timer.C
			continue
		}
		if err := d.enqueueState(ctx, true); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Error("record the device's state", "error", err)
		} else {
			d.pokeOutbox()
		}
		last, pending = now, false
	}
}
