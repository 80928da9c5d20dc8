package supervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/keystone-edge/keystone/runner"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/events"
	"golang.org/x/sys/unix"
)

// Takeover is a component handed over by the previous image of this agent
// process (the agent re-executes itself in place to update or reload; see
// Freeze). Its actor skips the install script and, at its first start,
// adopts the running process instead of starting one.
type Takeover struct {
	// Version: the component is taken over only if the desired one has
	// this version; otherwise its process is stopped and the desired
	// version installed and started as usual.
	Version string
	// Restarts is the restart count to carry on from.
	Restarts int
	// Process is the running process; nil when none ran (a plugin's
	// schedule, which simply starts again, or a component between runs).
	Process *runner.HandOver
}

// Frozen is one component as Freeze left it.
type Frozen struct {
	Name, Version string
	State         State
	Restarts      int
	// Process is the running process, its output no longer read; nil
	// when none ran.
	Process *runner.HandOver
}

// Adopter is a Launcher that can also take over a process handed over by
// the previous image of this agent process.
type Adopter interface {
	Adopt(ctx context.Context, c *Component, h runner.HandOver) (Handle, error)
}

// handOverer is a Handle whose process can be handed to the next image.
type handOverer interface {
	HandOver() (runner.HandOver, error)
}

// Freeze prepares the hand-over to the next image of this agent process:
// every actor stops deciding (no more restarts, health checks or timers),
// plugin schedules end, and every running process stops being read and
// is returned with its state and restart count — still running, never
// stopped. After Freeze the supervisor accepts no command; the caller
// execs the next image (or, if that is impossible, exits), and Stop then
// only ends the goroutines.
func (s *Supervisor) Freeze(ctx context.Context) ([]Frozen, error) {
	s.life.Lock()
	defer s.life.Unlock()
	if s.ctx == nil {
		return nil, errors.New("supervisor freeze: not started")
	}
	s.running.Store(false)
	reply := make(chan []Frozen, 1)
	s.inbox.put(mgrMsg{kind: msgFreeze, frozen: reply})
	select {
	case out := <-reply:
		return out, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("supervisor freeze: %w", ctx.Err())
	case <-s.done:
		return nil, ErrStopped
	}
}

// freezeAll is the loop's part of Freeze: each actor freezes in turn.
func (s *Supervisor) freezeAll(ls *loopState) []Frozen {
	ls.frozen = true
	out := make([]Frozen, 0, len(ls.entries))
	for _, name := range slices.Sorted(maps.Keys(ls.entries)) {
		a := ls.entries[name].actor
		reply := make(chan Frozen, 1)
		a.inbox.put(actorMsg{freeze: reply})
		select {
		case f := <-reply:
			out = append(out, f)
		case <-a.done:
		}
	}
	// Handed over to this image and not claimed yet (the first Apply has
	// not come): pass them on as they are.
	for _, name := range slices.Sorted(maps.Keys(s.takeover)) {
		t := s.takeover[name]
		delete(s.takeover, name)
		out = append(out, Frozen{Name: name, Version: t.Version, State: StateRunning, Restarts: t.Restarts, Process: t.Process})
	}
	return out
}

// freeze is the actor's part of Freeze; from here on it handles nothing.
func (a *Actor) freeze() Frozen {
	a.frozen = true
	for i, t := range a.timers {
		if t != nil {
			t.Stop()
			a.timers[i] = nil
		}
	}
	st := a.core.Status()
	f := Frozen{Name: a.Name(), Version: a.comp.Version(), State: st.State, Restarts: st.Restarts}
	if t := a.takeover; t != nil {
		// Handed over to this image but not adopted yet: pass it on as is.
		f.Restarts, f.Process = t.Restarts, t.Process
		return f
	}
	if a.handle == nil {
		return f
	}
	if ho, ok := a.handle.(handOverer); ok {
		h, err := ho.HandOver()
		if err == nil {
			f.Process = &h
		} else if !errors.Is(err, runner.ErrFinished) {
			a.warn("hand over", err)
		}
		return f
	}
	// A plugin's schedule: end it now rather than let a run start while
	// the agent changes image.
	if err := a.handle.Stop(context.WithoutCancel(a.ctx)); err != nil {
		a.warn("end schedule for the hand-over", err)
	}
	return f
}

// adoptOrLaunch starts run gen: by adopting the process handed over, when
// there is one and it is still there, else by launching afresh.
func (a *Actor) adoptOrLaunch() (Handle, error) {
	t := a.takeover
	a.takeover = nil
	if t != nil && t.Process != nil {
		if ad, ok := a.deps.launcher.(Adopter); ok {
			h, err := ad.Adopt(a.ctx, a.comp, *t.Process)
			if err == nil {
				return h, nil
			}
			a.deps.events.Publish(events.Event{At: a.now, Kind: events.KindWarning, Component: a.Name(),
				Reason: "the process handed over by the previous agent image is gone; starting afresh: " + err.Error()})
		}
	}
	return a.deps.launcher.Launch(a.ctx, a.comp)
}

// claimTakeover hands the takeover of c, if any and of the same version,
// to its new actor; a takeover of another version is stopped.
func (s *Supervisor) claimTakeover(c *Component) *Takeover {
	t, ok := s.takeover[c.Name()]
	if !ok {
		return nil
	}
	delete(s.takeover, c.Name())
	if t.Version != c.Version() {
		s.dropTakeover(c.Name(), t)
		return nil
	}
	return &t
}

// dropTakeovers stops every handed-over process no desired component
// claimed.
func (s *Supervisor) dropTakeovers() {
	for name, t := range s.takeover {
		delete(s.takeover, name)
		s.dropTakeover(name, t)
	}
}

// dropTakeover stops a handed-over process that is not wanted as it is.
func (s *Supervisor) dropTakeover(name string, t Takeover) {
	if t.Process == nil || s.cfg.Reaper == nil {
		return
	}
	rec := t.Process.Record
	closeHandedFiles(t.Process)
	go func() {
		if err := s.cfg.Reaper.Reap(s.ctx, processOf(rec)); err != nil {
			s.cfg.Logger.Warn("stop handed-over process", "component", name, "err", err)
		}
	}()
}

// closeHandedFiles closes the output descriptors of a hand-over nobody
// adopts.
func closeHandedFiles(h *runner.HandOver) {
	_ = unix.Close(h.Stdout)
	_ = unix.Close(h.Stderr)
}

// processOf is the store's record of a handed-over process.
func processOf(r runner.Record) store.Process {
	return store.Process{Component: r.Component, PID: r.PID, StartTicks: r.StartTicks, PGID: r.PGID, CgroupPath: r.CgroupPath}
}

// takeoverKeeps says which recorded processes and cgroups the start-up
// reaping and sweep must leave alone: those handed over.
func (s *Supervisor) takeoverKeeps() (pids map[string]int, groups []string) {
	pids = map[string]int{}
	for name, t := range s.takeover {
		if t.Process != nil {
			pids[name] = t.Process.PID
			if t.Process.CgroupPath != "" {
				groups = append(groups, t.Process.CgroupPath)
			}
		}
	}
	return pids, groups
}
