package controller

import (
	"encoding/json"
	"fmt"

	"github.com/eclipse/paho.golang/paho"

	"github.com/keystone-edge/keystone/comms/message"
)

// maxPayload bounds a status or state message: a state lists a device's
// components, a few KiB.
const maxPayload = 256 << 10

// received routes one message. It always reports the message handled: a
// bad message is dropped (counted and logged), never refused, since a
// broker would only send it again.
func (c *Controller) received(pr paho.PublishReceived) (bool, error) {
	topic, payload := pr.Packet.Topic, pr.Packet.Payload
	var got arrival
	if dev, job, err := message.ParseStatusTopic(c.cfg.TopicPrefix, topic); err == nil {
		got = c.status(topic, dev, job, payload)
	} else if dev, err := message.ParseStateTopic(c.cfg.TopicPrefix, topic); err == nil {
		got = c.state(topic, dev, payload)
	} else {
		c.log.Debug("message on a topic the controller does not read", "topic", topic)
	}
	if c.cfg.Record != nil {
		got.client, got.packet = pr.Client, pr.Packet
		c.arrived(got)
	}
	return true, nil
}

// arrival is one message received while Config.Record is set: what it
// brought, if anything new, and how to acknowledge it.
type arrival struct {
	Arrival
	client *paho.Client
	packet *paho.Publish
}

// status decodes a status and tells duplicates apart; without
// Config.Record it also hands it on, and with it returns it for the
// recorder.
func (c *Controller) status(topic, deviceID, jobID string, payload []byte) arrival {
	st, err := decodeStatus(deviceID, jobID, payload)
	if err != nil {
		c.malformed(topic, err)
		return arrival{}
	}
	c.mu.Lock()
	fresh := c.device(deviceID).seqs.add(st.Seq)
	if fresh {
		c.stats.Statuses++
	} else {
		c.stats.Duplicates++
	}
	c.mu.Unlock()
	if !fresh {
		c.log.Debug("duplicate job status dropped", "device_id", deviceID, "job_id", jobID, "seq", st.Seq)
		return arrival{}
	}
	if c.cfg.Record != nil {
		return arrival{Arrival: Arrival{Status: &st}}
	}
	c.handStatus(st)
	return arrival{}
}

// handStatus gives a new status to OnStatus, then to WaitStatus: it
// returns only after OnStatus has seen the status.
func (c *Controller) handStatus(st message.JobStatus) {
	if c.cfg.OnStatus != nil {
		c.cfg.OnStatus(st)
	}
	c.mu.Lock()
	c.device(st.DeviceID).record(st)
	c.notify()
	c.mu.Unlock()
}

// decodeStatus reads a status and checks it against its topic: the broker
// lets a device publish only on its own topics, so the topic names the
// device truly and the payload must agree.
func decodeStatus(deviceID, jobID string, payload []byte) (message.JobStatus, error) {
	var st message.JobStatus
	if len(payload) > maxPayload {
		return st, fmt.Errorf("%d bytes, more than %d", len(payload), maxPayload)
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return st, fmt.Errorf("not a job status: %w", err)
	}
	switch {
	case st.DeviceID != deviceID:
		return st, fmt.Errorf("device_id %q on the topic of device %q", st.DeviceID, deviceID)
	case st.JobID != jobID:
		return st, fmt.Errorf("job_id %q on the topic of job %q", st.JobID, jobID)
	case st.Seq == 0:
		return st, fmt.Errorf("no seq: a device numbers every message it sends from 1")
	case !knownStatus(st.Status):
		return st, fmt.Errorf("status %q is not a job status", st.Status)
	}
	return st, nil
}

func knownStatus(s string) bool {
	switch s {
	case message.StatusQueued, message.StatusInProgress, message.StatusSucceeded,
		message.StatusFailed, message.StatusRejected, message.StatusCanceled:
		return true
	}
	return false
}

// state keeps a device's state. An empty payload is the device's retained
// state being cleared: the device is forgotten.
func (c *Controller) state(topic, deviceID string, payload []byte) arrival {
	var st message.State
	if len(payload) > 0 {
		var err error
		if st, err = decodeState(deviceID, payload); err != nil {
			c.malformed(topic, err)
			return arrival{}
		}
	}
	c.mu.Lock()
	fresh := c.device(deviceID).setState(st, len(payload) > 0)
	if fresh {
		c.stats.States++
	}
	c.mu.Unlock()
	if !fresh {
		c.log.Debug("older device state dropped", "device_id", deviceID, "seq", st.Seq)
		return arrival{}
	}
	if len(payload) == 0 {
		st.DeviceID = deviceID
	}
	if c.cfg.Record != nil {
		return arrival{Arrival: Arrival{State: &st}}
	}
	c.handState(st)
	return arrival{}
}

func (c *Controller) handState(st message.State) {
	if c.cfg.OnState != nil {
		c.cfg.OnState(st)
	}
	c.mu.Lock()
	c.notify()
	c.mu.Unlock()
}

func decodeState(deviceID string, payload []byte) (message.State, error) {
	var st message.State
	if len(payload) > maxPayload {
		return st, fmt.Errorf("%d bytes, more than %d", len(payload), maxPayload)
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return st, fmt.Errorf("not a device state: %w", err)
	}
	if st.DeviceID != deviceID {
		return st, fmt.Errorf("device_id %q on the topic of device %q", st.DeviceID, deviceID)
	}
	return st, nil
}

func (c *Controller) malformed(topic string, err error) {
	c.mu.Lock()
	c.stats.Malformed++
	c.mu.Unlock()
	c.log.Warn("malformed message dropped", "topic", topic, "error", err)
}

// notify wakes the waiters. Called with mu held.
func (c *Controller) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}
