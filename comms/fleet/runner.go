package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/store"
)

// Control actions another process may ask of a rollout's driver through
// the state file (store.Fleet.RequestControl).
const (
	ControlPause  = "pause"
	ControlResume = "resume"
	ControlCancel = "cancel"
)

// ErrTarget is wrapped by Runner.Resolve for a target that is neither
// group:NAME nor device:ID.
var ErrTarget = errors.New("fleet: invalid target")

// RunnerConfig says how a Runner connects and where it keeps its record.
type RunnerConfig struct {
	// Controller is the broker connection; its OnStatus and OnState are
	// the Runner's and are overwritten.
	Controller controller.Config
	// State is the state file; required. The Runner does not close it.
	State *store.Fleet
	// Logger receives what the Runner did; nil discards it.
	Logger *slog.Logger
	// Now is the clock events are stamped with; nil means time.Now.
	Now func() time.Time
	// TickInterval is how often time is given to the rollouts and control
	// requests are taken; zero means one second.
	TickInterval time.Duration
	// Settle bounds how long Open waits for the retained device states to
	// arrive after connecting: they come as a burst, and Open returns once
	// none came for a quiet time (250 ms, or Settle/8 when that is shorter,
	// at least 100 ms) and every message received is stored, or after
	// Settle; zero means 10 s. The bound is for a fleet that is never
	// quiet; a burst of 10,000 states takes a few seconds to store on a
	// busy machine, and a device whose state is not in yet is not a
	// target of a group.
	Settle time.Duration
	// PublishTimeout bounds each attempt to publish a job (waiting for a
	// connection and the broker's acknowledgement); a job not
	// acknowledged in time is tried again, identical, at the next ticks.
	// Zero means 2 s.
	PublishTimeout time.Duration
}

// Runner drives rollouts: it owns a broker connection and, inside one
// goroutine (Run), the rollout cores. Statuses and states arriving from
// the broker are recorded in the state file and queued for that
// goroutine; every decision is stored before what it decided is
// published. No goroutine per device or per rollout.
type Runner struct {
	cfg   RunnerConfig
	log   *slog.Logger
	ctl   *controller.Controller
	owner string // this process's name for rollout leases

	mu     sync.Mutex
	queue  []Event       // statuses and states waiting for Run, at most maxQueued
	lost   bool          // events were dropped from a full queue: Run must read them again
	notify chan struct{} // signalled when queue grows

	// Owned by Run.
	rollouts map[string]*driven
	// draining are rollouts that finished with jobs still to publish
	// (the broker was away); they finish once those went out.
	draining map[string]*driven
	// away: a publish failed during this tick; the others wait for the
	// next one rather than each waiting out its timeout.
	away bool
	// onFinished, when set, is called by Run as a rollout finishes.
	onFinished func(id string, c *Core)
}

// driven is one rollout this Runner drives.
type driven struct {
	core  *Core
	saved []byte // the last stored snapshot
	// unsent are the jobs decided and stored but not yet acknowledged by
	// the broker, in the order decided.
	unsent []message.Job
	// told: the rollout's end was reported (onFinished) while it stays
	// open for devices that were offline.
	told bool
	// deployed are the successes to record with the next save of the
	// record (each device's manifest, for a later rollback); a restart
	// before then finds them again in the statuses it replays.
	deployed []store.FleetDeployment
}

// maxQueued bounds the events waiting for Run (a few hundred bytes each):
// room for the statuses of a large ring that arrive while its jobs are
// being published. Every status is in the state file and every state is
// held by the controller before it is queued, so an event dropped from a
// full queue is read again from there.
const maxQueued = 1 << 17

// publishParallel bounds the jobs waiting for the broker's
// acknowledgement at once.
const publishParallel = 64

// leaseFor is how long a claim on a rollout lasts without renewal: a
// driver that died leaves it for another after this.
const leaseFor = 30 * time.Second

// OpenRunner connects to the broker and waits cfg.Settle for the retained
// device states. It starts driving nothing until Run.
func OpenRunner(ctx context.Context, cfg RunnerConfig) (*Runner, error) {
	if cfg.State == nil {
		return nil, errors.New("fleet: runner: no state file")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 10 * time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	r := &Runner{cfg: cfg, log: cfg.Logger, owner: "runner-" + hex.EncodeToString(b[:]),
		notify: make(chan struct{}, 1), rollouts: map[string]*driven{}, draining: map[string]*driven{}}
	cc := cfg.Controller
	cc.OnStatus, cc.OnState, cc.Record = nil, nil, r.record
	if cc.Now == nil {
		cc.Now = cfg.Now
	}
	ctl, err := controller.Connect(ctx, cc)
	if err != nil {
		return nil, err
	}
	r.ctl = ctl
	if err := r.settle(ctx); err != nil {
		_ = ctl.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return r, nil
}

// settle waits for the burst of retained device states that follows the
// subscription to end: until none came for a while, at most cfg.Settle.
// A while is counted only while the controller has recorded everything it
// received: a large batch of states takes longer to store than the quiet
// time (10,000 devices, a receive maximum of 4096: half the fleet was
// still being stored when a rollout resolved its targets).
func (r *Runner) settle(ctx context.Context) error {
	quiet := max(min(r.cfg.Settle/8, 250*time.Millisecond), 100*time.Millisecond)
	limit := time.NewTimer(r.cfg.Settle)
	defer limit.Stop()
	calm := time.NewTimer(quiet)
	defer calm.Stop()
	defer signal(r.notify) // for Run: the events queued meanwhile
	for {
		select {
		case <-r.notify:
			calm.Reset(quiet)
		case <-calm.C:
			if r.ctl.Unrecorded() > 0 {
				calm.Reset(quiet)
				continue
			}
			return nil
		case <-limit.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Close disconnects. Call it after Run has returned.
func (r *Runner) Close(ctx context.Context) error { return r.ctl.Close(ctx) }

// record stores what arrived, statuses once per (device, seq), in one
// transaction, and queues it for Run in the order it arrived. It runs on
// the controller's recorder, which acknowledges the messages to the
// broker when it returns: they are durable by then.
func (r *Runner) record(ctx context.Context, arrived []controller.Arrival) error {
	var statuses []store.FleetStatus
	var devices []store.FleetDevice
	for _, a := range arrived {
		switch {
		case a.Status != nil:
			st := a.Status
			body, _ := json.Marshal(st)
			statuses = append(statuses, store.FleetStatus{DeviceID: st.DeviceID, Seq: st.Seq, JobID: st.JobID, Status: st.Status, Body: body})
		case a.State != nil:
			body, _ := json.Marshal(a.State)
			devices = append(devices, store.FleetDevice{ID: a.State.DeviceID, Online: a.State.Online, Body: body})
		}
	}
	fresh, err := r.cfg.State.RecordBatch(ctx, statuses, devices)
	if err != nil {
		return err
	}
	evs := make([]Event, 0, len(arrived))
	i := 0
	for _, a := range arrived {
		switch {
		case a.Status != nil:
			if fresh[i] { // else a redelivery of a status already counted
				st := a.Status
				evs = append(evs, Event{Kind: EventJobStatus, Device: st.DeviceID, JobID: st.JobID, Status: st.Status,
					ErrorCode: st.ErrorCode, Detail: st.Detail})
			}
			i++
		case a.State != nil:
			evs = append(evs, stateEvent(*a.State))
		}
	}
	r.enqueue(evs...)
	return nil
}

func stateEvent(st message.State) Event {
	return Event{Kind: EventDeviceState, Device: st.DeviceID, Online: st.Online, Healthy: st.Online && healthy(st)}
}

// healthy: the device says so and every component it lists is RUNNING.
func healthy(st message.State) bool {
	if !st.Healthy {
		return false
	}
	for _, c := range st.Components {
		if c.State != "RUNNING" {
			return false
		}
	}
	return true
}

// enqueue never blocks: the controller's receive goroutine must not wait
// for Run, which may itself be waiting for a PUBACK that goroutine reads.
// A full queue drops ev and has Run read the events again from the state
// file and the controller.
func (r *Runner) enqueue(evs ...Event) {
	r.mu.Lock()
	room := max(0, maxQueued-len(r.queue))
	if len(evs) > room {
		evs, r.lost = evs[:room], true
	}
	r.queue = append(r.queue, evs...)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *Runner) dequeue() ([]Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, lost := r.queue, r.lost
	r.queue, r.lost = nil, false
	return q, lost
}

// Resolve turns targets (group:NAME, device:ID) into device ids, sorted,
// from the retained states seen (on the broker, or recorded earlier in the
// state file). A group no device belongs to is an error.
func (r *Runner) Resolve(ctx context.Context, targets []string) ([]string, error) {
	states := map[string]message.State{}
	recorded, err := r.cfg.State.DeviceStates(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range recorded {
		var st message.State
		if json.Unmarshal(d.Body, &st) == nil {
			states[d.ID] = st
		}
	}
	for id, st := range r.ctl.States() {
		states[id] = st
	}
	return ResolveTargets(targets, states)
}

// ResolveTargets turns targets (group:NAME, device:ID) into device ids,
// sorted and without duplicates, the groups from states.
func ResolveTargets(targets []string, states map[string]message.State) ([]string, error) {
	seen := map[string]bool{}
	for _, t := range targets {
		kind, name, ok := strings.Cut(t, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w %q: want group:NAME or device:ID", ErrTarget, t)
		}
		switch kind {
		case "device":
			seen[name] = true
		case "group":
			n := 0
			for id, st := range states {
				if slices.Contains(st.Groups, name) {
					seen[id] = true
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("%w %q: no device has reported being in group %s", ErrTarget, t, name)
			}
		default:
			return nil, fmt.Errorf("%w %q: want group:NAME or device:ID", ErrTarget, t)
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// Create records a new rollout, with what is known of its devices'
// states, in the state file. It is started at the next tick of a Run —
// this Runner's or another process's.
func (r *Runner) Create(ctx context.Context, cfg Config) (*Core, error) {
	return CreateRollout(ctx, r.cfg.State, cfg, r.ctl.States())
}

// CreateRollout records a new rollout in state, with states as the
// devices' known retained states, for a Runner to start. Under
// HaltRollback, a cfg without Previous gets each target's previous
// deployment filled in: the manifest of the last job that SUCCEEDED on it
// in an earlier rollout, or else one made from its retained state (its
// components at their versions, without configuration overrides); a
// device with neither has no known previous deployment.
func CreateRollout(ctx context.Context, state *store.Fleet, cfg Config, states map[string]message.State) (*Core, error) {
	if cfg.OnHalt == HaltRollback && cfg.Previous == nil {
		prev, err := previousJobs(ctx, state, cfg.Job.Kind, cfg.Targets, states)
		if err != nil {
			return nil, err
		}
		cfg.Previous = prev
	}
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	for _, d := range c.s.Devices {
		if st, ok := states[d.ID]; ok {
			if _, err := c.Step(stateEvent(st)); err != nil {
				return nil, err
			}
		}
	}
	snap, err := json.Marshal(c.Snapshot())
	if err != nil {
		return nil, err
	}
	if err := state.CreateRollout(ctx, store.FleetRollout{ID: cfg.ID, Phase: string(c.Phase()), Open: true, State: snap}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run drives every open rollout of the state file until ctx ends: those
// open when it starts (continued from their record) and those created
// while it runs. It returns ctx's error, or the state file's.
func (r *Runner) Run(ctx context.Context) error {
	defer r.release(context.WithoutCancel(ctx))
	tick := time.NewTicker(r.cfg.TickInterval)
	defer tick.Stop()
	if err := r.tick(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.notify:
			evs, lost := r.dequeue()
			for _, ev := range evs {
				ev.At = r.cfg.Now()
				for id, d := range r.rollouts {
					if err := r.step(ctx, id, d, ev); err != nil {
						return err
					}
				}
			}
			if lost {
				r.log.Warn("events came faster than they were handled; reading them again from the state file")
				for id, d := range r.rollouts {
					if err := r.replay(ctx, id, d, r.cfg.Now()); err != nil {
						return err
					}
				}
			}
		case <-tick.C:
			if err := r.tick(ctx); err != nil {
				return err
			}
		}
	}
}

// Wait drives rollouts like Run until rollout id has finished, and
// returns its summary; at once for a rollout already finished. It must not
// be called while Run runs.
func (r *Runner) Wait(ctx context.Context, id string) (Summary, error) {
	if sum, open, err := LoadSummary(ctx, r.cfg.State, id); err != nil || !open {
		return sum, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sum Summary
	r.onFinished = func(fid string, c *Core) {
		if fid == id {
			sum = c.Summary()
			cancel()
		}
	}
	defer func() { r.onFinished = nil }()
	err := r.Run(ctx)
	if sum.ID == id {
		return sum, nil
	}
	return Summary{}, err
}

// LoadSummary reads rollout id's summary from the state file, and whether
// the rollout is still open.
func LoadSummary(ctx context.Context, state *store.Fleet, id string) (Summary, bool, error) {
	ro, err := state.Rollout(ctx, id)
	if err != nil {
		return Summary{}, false, err
	}
	c, err := RestoreJSON(ro.State)
	if err != nil {
		return Summary{}, false, fmt.Errorf("read the record of rollout %s: %w", id, err)
	}
	return c.Summary(), ro.Open, nil
}

// RestoreJSON restores a core from its snapshot as stored.
func RestoreJSON(snapshot []byte) (*Core, error) {
	var s State
	if err := json.Unmarshal(snapshot, &s); err != nil {
		return nil, err
	}
	return Restore(s)
}

// tick adopts the open rollouts it does not drive yet, renews its leases,
// applies control requests and lets time pass.
func (r *Runner) tick(ctx context.Context) error {
	now := r.cfg.Now()
	r.away = false
	for id, d := range r.draining {
		r.flush(ctx, id, d)
	}
	open, err := r.cfg.State.Rollouts(ctx, true)
	if err != nil {
		return err
	}
	for _, ro := range open {
		ok, err := r.cfg.State.ClaimRollout(ctx, ro.ID, r.owner, now.Add(leaseFor))
		if err != nil {
			return err
		}
		if !ok {
			if _, mine := r.rollouts[ro.ID]; mine {
				r.log.Warn("another process took over the rollout", "rollout_id", ro.ID)
				delete(r.rollouts, ro.ID)
			}
			continue
		}
		if _, mine := r.rollouts[ro.ID]; !mine {
			if err := r.adopt(ctx, ro, now); err != nil {
				r.log.Error("cannot drive rollout", "rollout_id", ro.ID, "error", err)
				continue
			}
		}
		d := r.rollouts[ro.ID]
		if d == nil {
			continue
		}
		controls, err := r.cfg.State.TakeControls(ctx, ro.ID)
		if err != nil {
			return err
		}
		for _, c := range controls {
			ev := Event{At: now, Reason: c.Reason}
			switch c.Action {
			case ControlPause:
				ev.Kind = EventPause
			case ControlResume:
				ev.Kind = EventResume
			case ControlCancel:
				ev.Kind = EventCancel
			default:
				r.log.Warn("unknown control request dropped", "rollout_id", ro.ID, "action", c.Action)
				continue
			}
			if err := r.step(ctx, ro.ID, d, ev); err != nil {
				return err
			}
		}
		if r.rollouts[ro.ID] != nil {
			if err := r.step(ctx, ro.ID, d, Event{Kind: EventTick, At: now}); err != nil {
				return err
			}
		}
		if r.rollouts[ro.ID] != nil {
			r.flush(ctx, ro.ID, d)
		}
	}
	return nil
}

// adopt starts driving a recorded rollout: a new one is started; one
// already under way is restored, given again the statuses recorded for it
// (one may have been recorded but not yet in its snapshot when the last
// driver stopped) and restarted, which publishes again, identically, the
// jobs no status acknowledged.
func (r *Runner) adopt(ctx context.Context, ro store.FleetRollout, now time.Time) error {
	c, err := RestoreJSON(ro.State)
	if err != nil {
		return fmt.Errorf("read the record of rollout %s: %w", ro.ID, err)
	}
	d := &driven{core: c, saved: ro.State}
	r.rollouts[ro.ID] = d
	if c.Phase() == PhaseNew {
		for _, st := range r.ctl.States() {
			if err := r.step(ctx, ro.ID, d, withAt(stateEvent(st), now)); err != nil {
				return err
			}
		}
		r.log.Info("rollout starting", "rollout_id", ro.ID, "devices", len(c.s.Devices))
		return r.step(ctx, ro.ID, d, Event{Kind: EventStart, At: now})
	}
	if err := r.replay(ctx, ro.ID, d, now); err != nil {
		return err
	}
	r.log.Info("rollout resumed from its record", "rollout_id", ro.ID, "phase", c.Phase())
	return r.step(ctx, ro.ID, d, Event{Kind: EventRestart, At: now})
}

// replay gives a rollout again the devices' states the controller holds
// and the statuses recorded for its jobs: those it has seen already
// change nothing.
func (r *Runner) replay(ctx context.Context, id string, d *driven, now time.Time) error {
	for _, st := range r.ctl.States() {
		if err := r.step(ctx, id, d, withAt(stateEvent(st), now)); err != nil {
			return err
		}
	}
	recorded, err := r.cfg.State.StatusesOfJobs(ctx, id+"-")
	if err != nil {
		return err
	}
	for _, fs := range recorded {
		var st message.JobStatus
		if json.Unmarshal(fs.Body, &st) != nil {
			continue
		}
		ev := Event{Kind: EventJobStatus, At: now, Device: st.DeviceID, JobID: st.JobID, Status: st.Status,
			ErrorCode: st.ErrorCode, Detail: st.Detail}
		if r.rollouts[id] != d {
			return nil // it finished
		}
		if err := r.step(ctx, id, d, ev); err != nil {
			return err
		}
	}
	return nil
}

func withAt(ev Event, at time.Time) Event { ev.At = at; return ev }

// step gives ev to one rollout, stores its record if it changed, and only
// then publishes what it decided. An event the rollout's phase refuses
// (a pause of a paused rollout) is logged and dropped. Only the state
// file failing is an error: a job the broker did not acknowledge within
// the publish timeout stays unsent and is published again, identical, at
// the next ticks (flush). A rollout that finished with jobs unsent
// finishes once they went out.
func (r *Runner) step(ctx context.Context, id string, d *driven, ev Event) error {
	actions, err := d.core.Step(ev)
	if errors.Is(err, ErrIllegal) {
		r.log.Warn("event refused", "rollout_id", id, "error", err)
		return nil
	}
	if err != nil {
		return err
	}
	if dep, ok := deployed(d.core, ev); ok {
		d.deployed = append(d.deployed, dep)
	}
	phase := d.core.Phase()
	open := r.open(d)
	// The record must be durable before a job goes out, and at the end; a
	// status alone need not be saved at once: it is in the state file
	// already and replayed after a restart. Saving a whole rollout after
	// every status made a rollout's cost grow with the square of its
	// devices, so those changes are saved at the next tick.
	if publishes(actions) || !open || ev.Kind == EventTick || ev.Kind == EventRestart {
		if err := r.save(ctx, id, d, open); err != nil {
			return err
		}
	}
	for _, a := range actions {
		r.act(id, d, a)
	}
	r.flush(ctx, id, d)
	if phase.over() && open && !d.told { // still recording latecomers; the course is over
		r.finished(id, d)
	}
	if !open {
		delete(r.rollouts, id)
		_ = r.cfg.State.ReleaseRollout(ctx, id, r.owner)
		if len(d.unsent) > 0 {
			r.log.Warn("rollout finished with jobs the broker has not acknowledged; publishing them again",
				"rollout_id", id, "phase", phase, "jobs", len(d.unsent))
			r.draining[id] = d
			return nil
		}
		r.finished(id, d)
	}
	return nil
}

// open reports whether a rollout stays open: its course is not over, or
// a device may still report its job's outcome, which is then recorded: one
// that was offline and may come back and run its job (retained), or one
// still running it when the rollout halted or was canceled.
func (r *Runner) open(d *driven) bool {
	return !d.core.Phase().over() || awaitingLate(d.core, r.cfg.Now())
}

// save stores the rollout's record, when it changed, with the successes
// noted since the last save, in one transaction.
func (r *Runner) save(ctx context.Context, id string, d *driven, open bool) error {
	snap, err := json.Marshal(d.core.Snapshot())
	if err != nil {
		return err
	}
	if bytes.Equal(snap, d.saved) && len(d.deployed) == 0 {
		return nil
	}
	if err := r.cfg.State.SaveRollout(ctx, id, string(d.core.Phase()), open, snap, d.deployed...); err != nil {
		return err
	}
	d.saved, d.deployed = snap, nil
	return nil
}

// awaitingLate reports whether a device counted OFFLINE, or still running
// its job (PUBLISHED) when the course ended, has an unexpired job out, so
// that its result may yet come.
func awaitingLate(c *Core, now time.Time) bool {
	ttl := c.s.Config.JobTTL
	for _, dev := range c.s.Devices {
		late := dev.Outcome == Offline || dev.Outcome == Published
		if late && !dev.PublishedAt.IsZero() && now.Sub(dev.PublishedAt) < ttl {
			return true
		}
	}
	return false
}

// finished tells of a rollout that finished and has nothing left to
// publish.
func (r *Runner) finished(id string, d *driven) {
	if d.told {
		return
	}
	d.told = true
	r.log.Info("rollout finished", "rollout_id", id, "phase", d.core.Phase())
	if r.onFinished != nil {
		r.onFinished(id, d.core)
	}
}

// flush publishes the rollout's unsent jobs, each within the publish
// timeout, many at once but a device's own jobs one after another in the
// order decided (a job before its cancel). At the first job the broker
// did not acknowledge no further publish starts: the jobs not
// acknowledged stay unsent, in order, for the next tick. A job that
// expired before it could go out is dropped.
func (r *Runner) flush(ctx context.Context, id string, d *driven) {
	if len(d.unsent) > 0 && !r.away && ctx.Err() == nil {
		d.unsent = r.publishAll(ctx, id, d.unsent)
	}
	if len(d.unsent) == 0 {
		d.unsent = nil
		if r.draining[id] == d {
			delete(r.draining, id)
			r.finished(id, d)
		}
	}
}

// publishAll publishes jobs as flush says and returns those left unsent,
// in order.
func (r *Runner) publishAll(ctx context.Context, id string, jobs []message.Job) []message.Job {
	now := r.cfg.Now()
	// Each device's jobs, in order; the devices in the order of their
	// first job.
	var devices []string
	chains := map[string][]int{}
	for i, j := range jobs {
		if _, seen := chains[j.DeviceID]; !seen {
			devices = append(devices, j.DeviceID)
		}
		chains[j.DeviceID] = append(chains[j.DeviceID], i)
	}
	done := make([]bool, len(jobs))
	var (
		next    atomic.Int64
		stopped atomic.Bool
		mu      sync.Mutex
		first   error
		firstAt int
	)
	var wg sync.WaitGroup
	for range min(publishParallel, len(devices)) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < len(devices); k = int(next.Add(1) - 1) {
				for _, i := range chains[devices[k]] {
					j := jobs[i]
					if stopped.Load() || ctx.Err() != nil {
						return
					}
					if !now.Before(j.ExpiresAt) {
						r.log.Error("job expired before the broker took it; dropped", "rollout_id", id, "device_id", j.DeviceID, "job_id", j.JobID)
						done[i] = true
						continue
					}
					pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
					err := r.ctl.PublishJob(pctx, j)
					cancel()
					if err != nil {
						stopped.Store(true)
						mu.Lock()
						if first == nil {
							first, firstAt = err, i
						}
						mu.Unlock()
						break // the device's later jobs wait for this one
					}
					done[i] = true
				}
			}
		})
	}
	wg.Wait()
	left := jobs[:0:0]
	for i, j := range jobs {
		if !done[i] {
			left = append(left, j)
		}
	}
	if first != nil && ctx.Err() == nil {
		r.away = true
		j := jobs[firstAt]
		r.log.Warn("publish a job; trying again at the next tick", "rollout_id", id, "device_id", j.DeviceID,
			"job_id", j.JobID, "unsent", len(left), "error", first)
	}
	return left
}

// act records what a rollout decided: jobs join its unsent ones (flush
// publishes them), the rest is logged.
func (r *Runner) act(id string, d *driven, a Action) {
	switch a.Kind {
	case ActionPublish, ActionCancelJob, ActionRollback:
		d.unsent = append(d.unsent, *a.Job)
	case ActionOutcome:
		r.log.Info("device outcome", "rollout_id", id, "device_id", a.Device, "from", a.From, "to", a.To,
			"error_code", a.ErrorCode, "detail", a.Detail)
	case ActionHalted:
		r.log.Warn("rollout halted", "rollout_id", id, "reason", a.Reason)
	case ActionNoRollback:
		r.log.Warn("device not rolled back", "rollout_id", id, "device_id", a.Device, "reason", a.Reason)
	default:
		r.log.Info(a.Kind.String(), "rollout_id", id, "ring", a.Ring, "phase", a.Phase, "reason", a.Reason)
	}
}

// release gives up the leases this Runner holds, so that another process
// may continue its rollouts at once.
func (r *Runner) release(ctx context.Context) {
	for id, d := range r.rollouts {
		if err := r.save(ctx, id, d, r.open(d)); err != nil {
			r.log.Warn("save the record of a rollout; its last statuses are read again at the next start",
				"rollout_id", id, "error", err)
		}
		_ = r.cfg.State.ReleaseRollout(ctx, id, r.owner)
	}
	r.rollouts = map[string]*driven{}
	r.draining = map[string]*driven{}
}

// publishes reports whether actions send anything to a device.
func publishes(actions []Action) bool {
	for _, a := range actions {
		switch a.Kind {
		case ActionPublish, ActionCancelJob, ActionRollback:
			return true
		}
	}
	return false
}
