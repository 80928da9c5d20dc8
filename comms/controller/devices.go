package controller

import (
	"context"
	"fmt"

	"github.com/keystone-edge/keystone/comms/message"
)

// seqWindow is how many of a device's latest sequence numbers are
// remembered one by one; anything older counts as seen. A device sends in
// order through its outbox, so a duplicate is a resend of something
// recent.
const seqWindow = 1024

// jobsKept is how many of a device's latest jobs WaitStatus can answer
// for.
const jobsKept = 16

// device is what the controller knows of one device. Guarded by
// Controller.mu.
type device struct {
	seqs     seqs
	jobs     []*jobRecord // oldest first, at most jobsKept
	state    message.State
	hasState bool
}

type jobRecord struct {
	jobID string
	seen  map[string]message.JobStatus // by status value, the first of each
}

// seqs tells sequence numbers seen from those not seen.
type seqs struct {
	floor uint64              // every seq below it counts as seen
	seen  map[uint64]struct{} // seen, at or above floor
}

// add records seq and reports whether it is new.
func (s *seqs) add(seq uint64) bool {
	if s.seen == nil {
		s.seen = map[uint64]struct{}{}
	}
	if _, dup := s.seen[seq]; dup || seq < s.floor {
		return false
	}
	s.seen[seq] = struct{}{}
	if seq >= s.floor+seqWindow {
		s.floor = seq - seqWindow + 1
		for old := range s.seen {
			if old < s.floor {
				delete(s.seen, old)
			}
		}
	}
	return true
}

// device returns the record of id, making it. Called with mu held.
func (c *Controller) device(id string) *device {
	d := c.devices[id]
	if d == nil {
		d = &device{}
		c.devices[id] = d
	}
	return d
}

func (d *device) record(st message.JobStatus) {
	var r *jobRecord
	for _, j := range d.jobs {
		if j.jobID == st.JobID {
			r = j
		}
	}
	if r == nil {
		r = &jobRecord{jobID: st.JobID, seen: map[string]message.JobStatus{}}
		if len(d.jobs) == jobsKept {
			d.jobs = d.jobs[1:]
		}
		d.jobs = append(d.jobs, r)
	}
	if _, ok := r.seen[st.Status]; !ok {
		r.seen[st.Status] = st
	}
}

// setState replaces the device's state with st and reports whether it
// did. The same state again (same seq and online flag, as a retained state
// is sent again at every subscription) changes nothing. An online state
// with a lower seq than the one held is a late resend and is dropped. An
// offline state always applies: it is the will, which the broker sends
// after the device's last message but which carries the seq the device
// had when it connected. present is false for a cleared state.
func (d *device) setState(st message.State, present bool) bool {
	if !present {
		if !d.hasState {
			return false
		}
		d.state, d.hasState = message.State{}, false
		return true
	}
	if d.hasState && st.Seq != 0 && d.state.Seq != 0 {
		same := st.Seq == d.state.Seq && st.Online == d.state.Online
		if same || st.Online && st.Seq < d.state.Seq {
			return false
		}
	}
	d.state, d.hasState = st, true
	return true
}

// State returns the latest state of deviceID, and whether there is one.
func (c *Controller) State(deviceID string) (message.State, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.devices[deviceID]; d != nil && d.hasState {
		return d.state, true
	}
	return message.State{}, false
}

// States returns the latest state of every device that has one, by
// device id. The map is the caller's.
func (c *Controller) States() map[string]message.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]message.State{}
	for id, d := range c.devices {
		if d.hasState {
			out[id] = d.state
		}
	}
	return out
}

// WaitStatus waits until deviceID has reported status for job jobID
// (since Connect, among its latest jobs) and returns that status message,
// or ctx's error.
func (c *Controller) WaitStatus(ctx context.Context, deviceID, jobID, status string) (message.JobStatus, error) {
	for {
		c.mu.Lock()
		st, ok := c.seenStatus(deviceID, jobID, status)
		changed := c.changed
		c.mu.Unlock()
		if ok {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return message.JobStatus{}, fmt.Errorf("wait for job %s on %s to be %s: %w", jobID, deviceID, status, ctx.Err())
		case <-c.life.Done():
			return message.JobStatus{}, ErrClosed
		}
	}
}

func (c *Controller) seenStatus(deviceID, jobID, status string) (message.JobStatus, bool) {
	if d := c.devices[deviceID]; d != nil {
		for _, j := range d.jobs {
			if j.jobID == jobID {
				st, ok := j.seen[status]
				return st, ok
			}
		}
	}
	return message.JobStatus{}, false
}

// WaitState waits until deviceID's latest state satisfies ok and returns
// it, or ctx's error.
func (c *Controller) WaitState(ctx context.Context, deviceID string, ok func(message.State) bool) (message.State, error) {
	for {
		c.mu.Lock()
		d := c.devices[deviceID]
		var st message.State
		has := d != nil && d.hasState
		if has {
			st = d.state
		}
		changed := c.changed
		c.mu.Unlock()
		if has && ok(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return message.State{}, fmt.Errorf("wait for the state of %s: %w", deviceID, ctx.Err())
		case <-c.life.Done():
			return message.State{}, ErrClosed
		}
	}
}
