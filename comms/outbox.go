package comms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/keystone-edge/keystone/store"
)

// outboxRetry is the wait after a failure that is neither a lost
// connection nor a refusal: the store failed, or the broker gave no answer
// in time.
const outboxRetry = time.Second

// ResendGrace is how long the device holds its outbox after reconnecting to
// a broker that lost its sessions (a restart without persistence): the
// controller lost its subscription too, and a status published before it
// subscribes again reaches nobody. The controller reconnects within 5 s.
const ResendGrace = 10 * time.Second

// publishLoop sends the outbox, one message at a time in seq order: each
// is published at its QoS and removed once the broker has acknowledged it,
// and only then is the next sent. A message whose publication fails on a
// lost connection stays, and the loop starts again from the oldest one at
// the next connection; the MQTT library drops what it had in flight when
// the broker has lost the session, so the outbox is the only queue that
// counts. A resent message has the same seq, by which the controller drops
// duplicates.
//
// Once drain is closed it returns as soon as the outbox is empty or the
// connection is down; it always returns when ctx ends.
func (d *Device) publishLoop(ctx context.Context, drain <-chan struct{}) {
	draining := false
	// wait waits for something to change; it reports false when the loop
	// must end.
	wait := func(changed <-chan struct{}, timeout <-chan time.Time) bool {
		if draining {
			return false
		}
		select {
		case <-d.wake:
		case <-changed:
		case <-timeout:
		case <-drain:
			draining = true
		case <-ctx.Done():
			return false
		}
		return true
	}
	for {
		conn, cm, changed := d.connection()
		if conn == nil {
			if !wait(changed, nil) {
				return
			}
			continue
		}
		if hold := time.Until(time.Unix(0, d.resendAfter.Load())); hold > 0 { // a real wait, whatever clock dates the jobs
			if !wait(changed, time.After(hold)) {
				return
			}
			continue
		}
		msgs, err := d.cfg.Store.PendingOutbox(ctx, 1)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Error("read the outbox", "error", err)
			if !wait(changed, time.After(outboxRetry)) {
				return
			}
			continue
		}
		if len(msgs) == 0 {
			if !wait(changed, nil) {
				return
			}
			continue
		}
		m := msgs[0]
		err = d.publish(ctx, conn, cm, m)
		var refused *refusedError
		switch {
		case err == nil:
			if err := d.cfg.Store.AckOutbox(ctx, m.Seq); err != nil && ctx.Err() == nil {
				// Sent again later: a duplicate the controller drops.
				d.log.Error("remove a delivered message from the outbox", "seq", m.Seq, "error", err)
			}
		case ctx.Err() != nil:
			return
		case errors.As(err, &refused) && !transientRefusal(refused.code):
			// The broker will never take it: keeping it would stop every
			// message behind it.
			d.log.Error("the broker refused a message; it is dropped", "topic", m.Topic, "seq", m.Seq,
				"reason_code", fmt.Sprintf("%#x", refused.code), "reason", refused.reason)
			if err := d.cfg.Store.AckOutbox(ctx, m.Seq); err != nil && ctx.Err() == nil {
				d.log.Error("remove a refused message from the outbox", "seq", m.Seq, "error", err)
			}
		case conn.Err() != nil, errors.Is(err, autopaho.ConnectionDownError):
			d.log.Debug("publish interrupted by the connection; sent again at the next one", "seq", m.Seq, "error", err)
			if conn.Err() == nil && !wait(changed, time.After(outboxRetry)) { // the loss is not recorded yet
				return
			}
		default:
			d.log.Warn("publish failed; trying again", "topic", m.Topic, "seq", m.Seq, "error", err)
			if !wait(changed, time.After(outboxRetry)) {
				return
			}
		}
	}
}

// publish sends m with its seq written in and waits for the broker's
// acknowledgement (for QoS 1), or until the connection ends.
func (d *Device) publish(ctx, conn context.Context, cm *autopaho.ConnectionManager, m store.Message) error {
	// The wait for the PUBACK ends with the connection: the library would
	// otherwise wait out its packet timeout for an answer that a lost
	// session never gives.
	pubCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(conn, cancel)
	defer stop()
	resp, err := cm.Publish(pubCtx, &paho.Publish{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, Payload: withSeq(m.Payload, m.Seq)})
	if err != nil && resp != nil && resp.ReasonCode >= 0x80 {
		r := &refusedError{code: resp.ReasonCode}
		if resp.Properties != nil {
			r.reason = resp.Properties.ReasonString
		}
		return r
	}
	return err
}

// refusedError is a PUBACK with a failure reason code.
type refusedError struct {
	code   byte
	reason string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("refused by the broker (reason code %#x %s)", e.code, e.reason)
}

// pokeOutbox wakes the publisher: something was enqueued.
func (d *Device) pokeOutbox() { signal(d.wake) }
