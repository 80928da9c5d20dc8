package controller

import (
	"time"
)

// recordRetry is the wait before a batch that Config.Record failed is
// given again.
const recordRetry = time.Second

// arrived queues one message for the recorder; it never blocks the
// receiving goroutine. The queue is bounded by the broker, which sends no
// more messages than the client's receive maximum before it has their
// acknowledgements.
func (c *Controller) arrived(a arrival) {
	c.recMu.Lock()
	c.recQueue = append(c.recQueue, a)
	c.recMu.Unlock()
	select {
	case c.recWake <- struct{}{}:
	default:
	}
}

// record is the recorder: it gives Config.Record every message that
// arrived since its last call, and acknowledges them to the broker only
// once Record returned nil. It runs until Close.
func (c *Controller) record() {
	defer c.subs.Done()
	var batch []arrival
	for {
		select {
		case <-c.life.Done():
			return
		case <-c.recWake:
		}
		c.recMu.Lock()
		batch = append(batch, c.recQueue...)
		c.recQueue = c.recQueue[:0]
		c.recBusy = len(batch)
		c.recMu.Unlock()
		var b []Arrival
		for _, a := range batch {
			if a.Status != nil || a.State != nil {
				b = append(b, a.Arrival)
			}
		}
		if len(b) > 0 {
			if err := c.cfg.Record(c.life, b); err != nil {
				if c.life.Err() != nil {
					return
				}
				c.log.Error("record what arrived; trying again", "messages", len(b), "error", err)
				select {
				case <-c.life.Done():
					return
				case <-time.After(recordRetry):
				}
				c.wakeRecorder()
				continue // batch is kept and grows with what arrives meanwhile
			}
		}
		for _, a := range batch {
			switch {
			case a.Status != nil:
				c.handStatus(*a.Status)
			case a.State != nil:
				c.handState(*a.State)
			}
		}
		// In the order received: the library sends acknowledgements in
		// that order anyway. One for a connection that is gone is of no
		// use; the broker sends that message again on the next one, and it
		// is then a duplicate.
		for _, a := range batch {
			if a.client != nil && a.packet != nil && a.packet.QoS > 0 {
				if err := a.client.Ack(a.packet); err != nil {
					c.log.Debug("acknowledge a message", "topic", a.packet.Topic, "error", err)
				}
			}
		}
		clear(batch)
		batch = batch[:0]
		c.recMu.Lock()
		c.recBusy = 0
		c.recMu.Unlock()
	}
}

// Unrecorded is how many received messages Config.Record has not yet
// stored and handed on (those waiting and the batch being recorded); 0
// without Record.
func (c *Controller) Unrecorded() int {
	c.recMu.Lock()
	defer c.recMu.Unlock()
	return len(c.recQueue) + c.recBusy
}

func (c *Controller) wakeRecorder() {
	select {
	case c.recWake <- struct{}{}:
	default:
	}
}
