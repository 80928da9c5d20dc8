package fleet

import (
	"fmt"
	"slices"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
)

// defaultJobTTL is a job's validity when Config.JobTTL is zero: the
// devices' default MQTT session expiry.
const defaultJobTTL = 7 * 24 * time.Hour

// Core is the decision logic of one rollout: events in, actions out. It
// does no I/O, reads no clock and is not safe for concurrent use; the
// caller that drives the rollout owns it. Model: etcd raft's RawNode, and
// the supervisor's component Core.
type Core struct {
	s     State
	index map[string]int // device id → index in s.Devices
	at    time.Time      // the time of the event in progress
	out   []Action

	// What follows is derived from s, so that a status costs the same
	// whatever the number of devices: one event must not walk them all.

	// dueSet and dueAt: no device has a deadline (a timeout, the end of
	// a soak) before dueAt; nothing is due at all while !dueSet.
	dueSet bool
	dueAt  time.Time
	// witness is a device that held its ring back when last looked at:
	// while it still does, the ring is not settled.
	witness int
	// pubRing and pubFrom: every device before pubFrom is published or
	// not of ring pubRing.
	pubRing, pubFrom int
	// finished and failed count each ring's devices that finished, and
	// those of them that failed, for the failure budget.
	finished, failed []int
}

// New checks cfg and returns the core of a rollout in PhaseNew, its rings
// decided.
func New(cfg Config) (*Core, error) {
	if err := check(&cfg); err != nil {
		return nil, err
	}
	ordered, rings := AssignRings(cfg.ID, cfg.Targets, cfg.Rings)
	s := State{Config: cfg, Phase: PhaseNew, Ring: -1, Idle: true, Devices: make([]Device, len(ordered))}
	for i, id := range ordered {
		s.Devices[i] = Device{ID: id, Ring: rings[i], Outcome: Pending}
	}
	return Restore(s)
}

// Restore returns the core of a recorded rollout. After a restart, send
// EventRestart first.
func Restore(s State) (*Core, error) {
	c := &Core{s: s.clone(), index: make(map[string]int, len(s.Devices)),
		dueSet: true, pubRing: -1, // the first advance looks at every device
		finished: make([]int, len(s.Config.Rings)), failed: make([]int, len(s.Config.Rings))}
	for i, d := range c.s.Devices {
		if _, dup := c.index[d.ID]; dup || d.Ring < 0 || d.Ring >= len(c.s.Config.Rings) {
			return nil, fmt.Errorf("%w: recorded state: device %q twice or in no ring", ErrConfig, d.ID)
		}
		c.index[d.ID] = i
		c.count(d.Ring, d.Outcome, 1)
	}
	return c, nil
}

// Snapshot returns a copy of the rollout's record, to be stored.
func (c *Core) Snapshot() State { return c.s.clone() }

// Phase returns the rollout's phase.
func (c *Core) Phase() Phase { return c.s.Phase }

func check(cfg *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if !message.ValidJobID(cfg.ID + "-x") {
		return bad("rollout id %q must be of A-Z a-z 0-9 . _ -", cfg.ID)
	}
	switch cfg.Job.Kind {
	case message.KindDeployment:
		if cfg.Job.Manifest == "" {
			return bad("a deployment needs a manifest")
		}
	case message.KindAgentUpdate:
		if cfg.Job.Version == "" {
			return bad("an agent update needs a version")
		}
	default:
		return bad("job kind %q; want deployment or agent_update", cfg.Job.Kind)
	}
	seen := map[string]bool{}
	var targets []string
	for _, d := range cfg.Targets {
		if !message.ValidJobID(cfg.ID + "-" + d + "-rollback") {
			return bad("device id %q cannot be part of a job id", d)
		}
		if !seen[d] {
			seen[d] = true
			targets = append(targets, d)
		}
	}
	cfg.Targets = targets
	if len(cfg.Rings) == 0 {
		cfg.Rings = []float64{1}
	}
	for i, f := range cfg.Rings {
		if f <= 0 || f > 1 || i > 0 && f <= cfg.Rings[i-1] {
			return bad("rings %v must increase within (0, 1]", cfg.Rings)
		}
	}
	if cfg.Rings[len(cfg.Rings)-1] != 1 {
		return bad("the last ring must be 100%%, not %g%%", cfg.Rings[len(cfg.Rings)-1]*100)
	}
	if cfg.Rate < 0 || cfg.Soak < 0 || cfg.DeviceTimeout < 0 || cfg.MinExecuted < 0 || cfg.JobTTL < 0 {
		return bad("rate, soak, device timeout, min executed and job TTL cannot be negative")
	}
	if cfg.MaxFailureRate < 0 || cfg.MaxFailureRate > 1 {
		return bad("max failure rate %g must be within 0 and 1", cfg.MaxFailureRate)
	}
	switch cfg.OnHalt {
	case "":
		cfg.OnHalt = HaltPause
	case HaltPause, HaltRollback:
	default:
		return bad("on-halt %q; want pause or rollback", cfg.OnHalt)
	}
	if cfg.JobTTL == 0 {
		cfg.JobTTL = defaultJobTTL
	}
	return nil
}

// Step applies one event and returns the actions it calls for, in order.
// An event the phase does not allow is an error wrapping ErrIllegal and
// changes nothing. Statuses and states keep being recorded after the
// rollout has finished (a late device still reports), but a finished
// rollout publishes no job of its own again.
func (c *Core) Step(ev Event) ([]Action, error) {
	c.out, c.at = nil, ev.At
	illegal := func() ([]Action, error) {
		return nil, fmt.Errorf("%w: %s in phase %s", ErrIllegal, ev.Kind, c.s.Phase)
	}
	switch ev.Kind {
	case EventStart:
		if c.s.Phase != PhaseNew {
			return illegal()
		}
		c.s.Phase = PhaseRunning
		c.startRing(0)
	case EventTick:
	case EventJobStatus:
		c.jobStatus(ev)
	case EventDeviceState:
		c.deviceState(ev)
	case EventPause:
		if c.s.Phase != PhaseRunning {
			return illegal()
		}
		c.s.Phase, c.s.Reason, c.s.Idle = PhasePaused, ev.Reason, true
	case EventResume:
		if c.s.Phase != PhasePaused {
			return illegal()
		}
		c.s.Phase, c.s.Reason = PhaseRunning, ""
	case EventCancel:
		if c.s.Phase != PhaseRunning && c.s.Phase != PhasePaused {
			return illegal()
		}
		c.cancel(ev)
	case EventRestart:
		c.republish()
	default:
		return illegal()
	}
	c.advance(ev.At)
	out := c.out
	c.out = nil
	return out, nil
}

// advance does what time and the last event made due: soaks completed,
// timeouts, the next ring, and publishes under the rate.
func (c *Core) advance(now time.Time) {
	if c.dueSet && !now.Before(c.dueAt) {
		c.expire(now)
	}
	for c.s.Phase == PhaseRunning && c.ringSettled(c.s.Ring) {
		c.emit(Action{Kind: ActionRingFinished, Ring: c.s.Ring})
		c.startRing(c.s.Ring + 1)
	}
	if c.s.Phase == PhaseRunning {
		c.publish(now)
	}
}

// expire ends the soaks completed and the devices timed out at now, and
// finds the next deadline.
func (c *Core) expire(now time.Time) {
	cfg := c.s.Config
	c.dueSet = false
	for i := range c.s.Devices {
		d := &c.s.Devices[i]
		switch d.Outcome {
		case Soaking:
			if !d.SoakSince.IsZero() && !now.Before(d.SoakSince.Add(cfg.Soak)) || cfg.Soak == 0 {
				c.set(d, Succeeded, "", "")
			} else if cfg.DeviceTimeout > 0 && !now.Before(d.SucceededAt.Add(max(cfg.DeviceTimeout, cfg.Soak))) {
				c.set(d, TimedOut, "SOAK_TIMEOUT", fmt.Sprintf("did not stay healthy for %s within %s of its success", cfg.Soak, max(cfg.DeviceTimeout, cfg.Soak)))
			}
		case Published:
			if cfg.DeviceTimeout > 0 && !now.Before(d.PublishedAt.Add(cfg.DeviceTimeout)) {
				c.set(d, TimedOut, "TIMEOUT", fmt.Sprintf("no final status within %s of publishing", cfg.DeviceTimeout))
			}
		}
		c.noteDue(d)
	}
}

// noteDue takes d's next deadline into account: the end of its soak, or
// its timeout. Called whenever what it depends on may have changed.
func (c *Core) noteDue(d *Device) {
	cfg := c.s.Config
	var at time.Time
	has := false
	earlier := func(t time.Time) {
		if !has || t.Before(at) {
			at, has = t, true
		}
	}
	switch d.Outcome {
	case Soaking:
		if cfg.Soak == 0 {
			earlier(time.Time{}) // at once
		}
		if !d.SoakSince.IsZero() {
			earlier(d.SoakSince.Add(cfg.Soak))
		}
		if cfg.DeviceTimeout > 0 {
			earlier(d.SucceededAt.Add(max(cfg.DeviceTimeout, cfg.Soak)))
		}
	case Published:
		if cfg.DeviceTimeout > 0 {
			earlier(d.PublishedAt.Add(cfg.DeviceTimeout))
		}
	}
	if has && (!c.dueSet || at.Before(c.dueAt)) {
		c.dueAt, c.dueSet = at, true
	}
}

// startRing starts ring k, skipping rings left empty, or finishes the
// rollout after the last. A device not known online is OFFLINE.
func (c *Core) startRing(k int) {
	for ; k < len(c.s.Config.Rings); k++ {
		if c.ringSize(k) > 0 {
			break
		}
	}
	c.s.Ring = k
	if k == len(c.s.Config.Rings) {
		c.finish(PhaseSucceeded, "every ring finished")
		return
	}
	c.emit(Action{Kind: ActionRingStarted, Ring: k})
	for i := range c.s.Devices {
		if d := &c.s.Devices[i]; d.Ring == k && !(d.Known && d.Online) {
			c.set(d, Offline, "", "")
		}
	}
}

func (c *Core) ringSize(k int) int {
	n := 0
	for _, d := range c.s.Devices {
		if d.Ring == k {
			n++
		}
	}
	return n
}

// ringSettled reports whether every device of ring k has its job and no
// longer holds the ring back.
func (c *Core) ringSettled(k int) bool {
	n := len(c.s.Devices)
	for i := range n {
		j := (c.witness + i) % n
		if d := &c.s.Devices[j]; d.Ring == k && (d.PublishedAt.IsZero() || !d.Outcome.settled()) {
			c.witness = j
			return false
		}
	}
	return true
}

// publish publishes the current ring's jobs due at now under the rate,
// in rank order.
func (c *Core) publish(now time.Time) {
	cfg := c.s.Config
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Minute / time.Duration(cfg.Rate)
	}
	if c.s.Idle && c.s.NextPublishAt.Before(now) {
		c.s.NextPublishAt = now
	}
	c.s.Idle = false
	if c.pubRing != c.s.Ring {
		c.pubRing, c.pubFrom = c.s.Ring, 0
	}
	for c.pubFrom < len(c.s.Devices) {
		if d := &c.s.Devices[c.pubFrom]; d.Ring == c.s.Ring && d.PublishedAt.IsZero() {
			break
		}
		c.pubFrom++
	}
	for i := c.pubFrom; i < len(c.s.Devices); i++ {
		d := &c.s.Devices[i]
		if d.Ring != c.s.Ring || !d.PublishedAt.IsZero() || d.Outcome != Pending && d.Outcome != Offline {
			continue
		}
		if interval > 0 && now.Before(c.s.NextPublishAt) {
			return
		}
		c.s.NextPublishAt = c.s.NextPublishAt.Add(interval)
		d.PublishedAt = now
		if d.Outcome == Pending {
			c.count(d.Ring, d.Outcome, -1)
			d.Outcome = Published
			c.count(d.Ring, d.Outcome, 1)
		}
		c.noteDue(d)
		c.emit(Action{Kind: ActionPublish, Device: d.ID, Job: c.job(d)})
	}
	c.s.Idle = true
}

// job is device d's job: its id and content depend only on the record, so
// publishing it again gives the same document.
func (c *Core) job(d *Device) *message.Job {
	cfg := c.s.Config
	return c.document(cfg.ID+"-"+d.ID, d.ID, d.PublishedAt, cfg.Job)
}

func (c *Core) document(id, device string, at time.Time, t Template) *message.Job {
	j := &message.Job{JobID: id, Kind: t.Kind, DeviceID: device, CreatedAt: at,
		ExpiresAt: at.Add(c.s.Config.JobTTL), RolloutID: c.s.Config.ID}
	switch t.Kind {
	case message.KindDeployment:
		j.Deployment = &message.DeploymentJob{Manifest: t.Manifest}
	case message.KindAgentUpdate:
		j.AgentUpdate = &message.AgentUpdateJob{Version: t.Version}
	}
	return j
}

// republish publishes again, identically, the jobs recorded as published
// that no status has acknowledged: their publish may have been lost with
// the crash. A device that already has the job answers with its recorded
// status and never runs it twice.
func (c *Core) republish() {
	for i := range c.s.Devices {
		d := &c.s.Devices[i]
		if !d.PublishedAt.IsZero() && d.Status == "" && (d.Outcome == Published || d.Outcome == Offline) && !d.CancelSent {
			c.emit(Action{Kind: ActionPublish, Device: d.ID, Job: c.job(d)})
		}
	}
}

func (c *Core) jobStatus(ev Event) {
	i, ok := c.index[ev.Device]
	if !ok {
		return
	}
	d := &c.s.Devices[i]
	cfg := c.s.Config
	switch ev.JobID {
	case cfg.ID + "-" + d.ID + "-rollback":
		d.RollbackStatus = ev.Status
		return
	case cfg.ID + "-" + d.ID:
	default:
		return // another rollout's job, or a cancel job's own status
	}
	if d.PublishedAt.IsZero() {
		return
	}
	d.Status, d.StatusAt = ev.Status, ev.At
	if !message.Final(ev.Status) {
		return
	}
	if d.Outcome != Published && d.Outcome != Offline {
		if d.Outcome == TimedOut {
			d.Late = ev.Status
		}
		return // a duplicate, or too late to count
	}
	switch ev.Status {
	case message.StatusSucceeded:
		d.SucceededAt = ev.At
		d.SoakSince = time.Time{}
		if d.Known && d.Online && d.Healthy {
			d.SoakSince = ev.At
		}
		c.set(d, Soaking, "", "")
	case message.StatusFailed:
		c.set(d, Failed, ev.ErrorCode, ev.Detail)
	case message.StatusRejected:
		c.set(d, Rejected, ev.ErrorCode, ev.Detail)
	case message.StatusCanceled:
		c.set(d, Canceled, ev.ErrorCode, ev.Detail)
	}
}

func (c *Core) deviceState(ev Event) {
	i, ok := c.index[ev.Device]
	if !ok {
		return
	}
	d := &c.s.Devices[i]
	d.Known, d.Online, d.Healthy = true, ev.Online, ev.Healthy
	if d.Outcome != Soaking {
		return
	}
	switch {
	case ev.Online && !ev.Healthy:
		c.set(d, Failed, "UNHEALTHY", "a component stopped running while soaking")
	case !ev.Online:
		d.SoakSince = time.Time{} // the soak starts again when it is back
	case d.SoakSince.IsZero():
		d.SoakSince = ev.At
		c.noteDue(d)
	}
}

// set records d's new outcome and, for a device that finished, judges its
// ring's failure budget.
func (c *Core) set(d *Device, to Outcome, code, detail string) {
	from := d.Outcome
	c.count(d.Ring, from, -1)
	d.Outcome = to
	c.count(d.Ring, to, 1)
	c.noteDue(d)
	if to.failure() || to == Canceled {
		d.ErrorCode, d.Detail = code, detail
	}
	c.emit(Action{Kind: ActionOutcome, Device: d.ID, From: from, To: to, ErrorCode: code, Detail: detail})
	if to.finished() {
		c.judge(d.Ring)
	}
}

// judge halts the rollout when ring k's failures exceed the budget, once
// at least MinExecuted of its devices have finished.
func (c *Core) judge(k int) {
	if c.s.Phase != PhaseRunning && c.s.Phase != PhasePaused {
		return
	}
	cfg := c.s.Config
	finished, failed := c.finished[k], c.failed[k]
	if finished == 0 || finished < cfg.MinExecuted || float64(failed) <= cfg.MaxFailureRate*float64(finished) {
		return
	}
	c.halt(fmt.Sprintf("ring %d: %d of %d finished devices failed, more than %g%%",
		k, failed, finished, cfg.MaxFailureRate*100))
}

// halt stops new jobs and, under HaltRollback, sends every device that
// took (or may have taken) the new deployment its previous one.
func (c *Core) halt(reason string) {
	c.s.Phase, c.s.Reason = PhaseHalted, reason
	c.emit(Action{Kind: ActionHalted, Reason: reason})
	if c.s.Config.OnHalt == HaltRollback {
		for i := range c.s.Devices {
			d := &c.s.Devices[i]
			if d.PublishedAt.IsZero() || d.RollbackSent || d.Outcome == Failed || d.Outcome == Rejected || d.Outcome == Canceled {
				continue
			}
			prev, ok := c.s.Config.Previous[d.ID]
			if !ok {
				c.emit(Action{Kind: ActionNoRollback, Device: d.ID, Reason: "its previous deployment is unknown"})
				continue
			}
			d.RollbackSent = true
			c.emit(Action{Kind: ActionRollback, Device: d.ID,
				Job: c.document(c.s.Config.ID+"-"+d.ID+"-rollback", d.ID, c.at, prev)})
		}
	}
	c.finish(PhaseHalted, reason)
}

func (c *Core) cancel(ev Event) {
	c.s.Phase, c.s.Reason = PhaseCanceled, ev.Reason
	for i := range c.s.Devices {
		d := &c.s.Devices[i]
		switch {
		case d.PublishedAt.IsZero():
			c.set(d, Canceled, "", ev.Reason)
		case d.Outcome == Published || d.Outcome == Offline:
			d.CancelSent = true
			j := c.document(c.s.Config.ID+"-"+d.ID+"-cancel", d.ID, ev.At, Template{Kind: message.KindCancel})
			j.Cancel = &message.CancelJob{JobID: c.s.Config.ID + "-" + d.ID}
			c.emit(Action{Kind: ActionCancelJob, Device: d.ID, Job: j})
		}
	}
	c.finish(PhaseCanceled, "canceled: "+ev.Reason)
}

func (c *Core) finish(p Phase, reason string) {
	c.s.Phase = p
	c.emit(Action{Kind: ActionFinished, Phase: p, Reason: reason})
}

func (c *Core) emit(a Action) { c.out = append(c.out, a) }

// count adds delta to ring k's counts of outcome o.
func (c *Core) count(k int, o Outcome, delta int) {
	if o.finished() {
		c.finished[k] += delta
	}
	if o.failure() {
		c.failed[k] += delta
	}
}

// Devices returns a copy of every device's record, in rank order.
func (c *Core) Devices() []Device { return slices.Clone(c.s.Devices) }
