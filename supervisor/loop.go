package supervisor

// The supervisor loop: the one goroutine that owns the set of components,
// applies changes to it and sends the commands reconcile decides.

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/keystone-edge/keystone/recipes"
)

type msgKind int

const (
	msgChanged  msgKind = iota // an actor's status changed
	msgCmdDone                 // an actor answered a command the loop sent
	msgApply                   // replace the set
	msgCommand                 // a command by hand
	msgShutdown                // agent shutdown
	msgFreeze                  // hand-over to the next agent image
)

type mgrMsg struct {
	kind   msgKind
	name   string
	actor  *Actor // msgCmdDone: which actor answered
	comps  []*Component
	input  Input
	result chan<- commandResult // msgCommand
	reply  chan<- error         // msgApply, msgShutdown
	frozen chan<- []Frozen      // msgFreeze
}

// entry is one supervised component, owned by the loop.
type entry struct {
	actor      *Actor
	wanted     bool
	stopReason string
	busy       bool
	// stopWaiters are stops by hand, answered once the component is down.
	stopWaiters []chan<- commandResult
	// startWaiters are starts by hand that must wait for dependencies,
	// answered at the end of the next converge.
	startWaiters []chan<- commandResult
	// restarting: a restart by hand is taking the component down (its
	// dependents first); restartWaiters are answered once it started again.
	restarting     bool
	restartWaiters []chan<- commandResult
	removing       bool       // stop, then remove the actor
	next           *Component // replace with this once stopped
}

type loopState struct {
	entries  map[string]*entry
	applying chan<- error // an Apply waiting for removals to finish
	shutdown chan<- error // a Stop waiting for everything to stop
	stopping bool
	frozen   bool // Freeze was called: nothing is decided any more
	applied  bool // the first Apply was made (takeovers not claimed by it are dropped)
}

func (s *Supervisor) loop() {
	defer close(s.done)
	ls := &loopState{entries: map[string]*entry{}}
	defer s.quitAll(ls)
	for {
		select {
		case <-s.inbox.ready():
			for _, m := range s.inbox.drain() {
				s.handle(ls, m)
			}
			if !ls.frozen {
				s.converge(ls)
			}
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Supervisor) handle(ls *loopState, m mgrMsg) {
	if ls.frozen {
		switch {
		case m.kind == msgShutdown:
			m.reply <- nil // nothing to stop: the processes were handed over
		case m.reply != nil:
			m.reply <- ErrStopped
		case m.result != nil:
			m.result <- commandResult{err: ErrStopped}
		case m.frozen != nil:
			m.frozen <- nil
		}
		return
	}
	switch m.kind {
	case msgFreeze:
		m.frozen <- s.freezeAll(ls)
	case msgChanged:
		s.broadcast()
	case msgCmdDone:
		if e := ls.entries[m.name]; e != nil && e.actor == m.actor {
			e.busy = false
		}
	case msgApply:
		if ls.stopping {
			m.reply <- ErrStopped
			return
		}
		if ls.applying != nil {
			m.reply <- errors.New("supervisor apply: another apply is in progress")
			return
		}
		s.apply(ls, m.comps)
		ls.applying = m.reply
		if !ls.applied {
			ls.applied = true
			s.dropTakeovers()
		}
	case msgCommand:
		e := ls.entries[m.name]
		if e == nil || e.removing {
			m.result <- commandResult{err: fmt.Errorf("%s: %w", m.name, ErrNotFound)}
			return
		}
		if ls.stopping {
			m.result <- commandResult{err: ErrStopped}
			return
		}
		s.byHand(ls, e, m)
	case msgShutdown:
		ls.stopping = true
		ls.shutdown = m.reply
		for _, e := range ls.entries {
			e.wanted, e.stopReason = false, "agent shutdown"
		}
	}
}

// byHand carries out a command by hand. A stop goes through reconcile, so
// that hard dependents stop first, and is answered once the component is
// down; a stop of a failed component (BROKEN, or ERRORED for good) is sent
// at once and leaves it STOPPED. A start is sent at once when its hard dependencies are ready, and
// otherwise answered with the current state: it starts when they are. A
// restart of a running component first takes it down like a stop, then
// restarts it; of one that runs nothing, it is sent at once.
func (s *Supervisor) byHand(ls *loopState, e *entry, m mgrMsg) {
	st := e.actor.settledStatus()
	switch m.input.Kind {
	case InputStop:
		e.wanted, e.stopReason = false, m.input.Reason
		if !st.Failed() || e.busy {
			e.stopWaiters = append(e.stopWaiters, m.result)
			return
		}
		// Nothing runs and nothing depends on it running: settle it in
		// STOPPED at once, which also cancels a pending broken_retry.
	case InputStart:
		e.wanted = true
		if st.State.Active() || st.State == StateNew {
			m.result <- commandResult{state: st.State}
			return
		}
		if !s.hardDepsReady(ls, e) {
			// Answered after converge, so that the status the caller reads
			// next already says what it waits for.
			e.startWaiters = append(e.startWaiters, m.result)
			return
		}
	case InputRestart:
		e.wanted = true
		if st.State.Active() || e.restarting {
			e.restarting = true
			e.restartWaiters = append(e.restartWaiters, m.result)
			return
		}
	default:
		e.wanted = true
	}
	e.busy = true
	a := e.actor
	a.ask(m.input, func(r commandResult) {
		m.result <- r
		s.inbox.put(mgrMsg{kind: msgCmdDone, name: a.Name(), actor: a})
	})
}

// restartNow sends the restart of a component a restart by hand took down,
// and answers the waiting callers with its result.
func (s *Supervisor) restartNow(e *entry) {
	e.restarting, e.busy = false, true
	waiters := e.restartWaiters
	e.restartWaiters = nil
	a := e.actor
	a.ask(Input{Kind: InputRestart, Reason: "restart requested"}, func(r commandResult) {
		for _, w := range waiters {
			w <- r
		}
		s.inbox.put(mgrMsg{kind: msgCmdDone, name: a.Name(), actor: a})
	})
}

func (s *Supervisor) hardDepsReady(ls *loopState, e *entry) bool {
	for _, d := range e.actor.comp.Recipe.Dependencies {
		dep, ok := ls.entries[d.Name]
		if !ok || d.Type == recipes.DependencySoft {
			continue
		}
		if !dep.actor.settledStatus().Ready() {
			return false
		}
	}
	return true
}

// apply diffs the new set against the entries.
func (s *Supervisor) apply(ls *loopState, comps []*Component) {
	desired := map[string]*Component{}
	for _, c := range comps {
		desired[c.Name()] = c
	}
	for name, e := range ls.entries {
		c, ok := desired[name]
		switch {
		case !ok:
			e.removing, e.wanted, e.next = true, false, nil
			e.stopReason = "removed from the deployment"
		case !reflect.DeepEqual(c, e.actor.comp):
			e.removing, e.wanted, e.next = true, false, c
			e.stopReason = fmt.Sprintf("replaced by %s %s", name, c.Version())
		default:
			e.removing, e.next = false, nil
			e.wanted = true
			if st := e.actor.settledStatus(); st.Failed() {
				e.busy = true
				s.askLoop(e, Input{Kind: InputRestart, Reason: "redeployed"})
			}
		}
	}
	for name, c := range desired {
		if _, ok := ls.entries[name]; !ok {
			ls.entries[name] = s.newEntry(c)
		}
	}
	s.publishActors(ls)
}

func (s *Supervisor) newEntry(c *Component) *entry {
	a := newActor(s.ctx, c, s.deps)
	a.takeover = s.claimTakeover(c)
	go a.run()
	return &entry{actor: a, wanted: true}
}

// askLoop sends a command whose answer comes back to the loop.
func (s *Supervisor) askLoop(e *entry, in Input) {
	a := e.actor
	a.ask(in, func(r commandResult) {
		if r.err != nil {
			s.cfg.Logger.Debug("command refused", "component", a.Name(), "input", in.Kind.String(), "err", r.err)
		}
		s.inbox.put(mgrMsg{kind: msgCmdDone, name: a.Name(), actor: a})
	})
}

// converge sends what reconcile decides, finishes removals and
// replacements, and answers a waiting Apply or Stop once done.
func (s *Supervisor) converge(ls *loopState) {
	for {
		changedSet := false
		for name, e := range ls.entries {
			if !e.removing || e.busy {
				continue
			}
			if !isDown(e.actor.settledStatus()) {
				continue
			}
			e.actor.quit()
			e.answerStops(commandResult{err: fmt.Errorf("%s: %w", name, ErrRemoved)})
			if e.next != nil {
				ls.entries[name] = s.newEntry(e.next)
			} else {
				delete(ls.entries, name)
			}
			changedSet = true
		}
		if changedSet {
			s.publishActors(ls)
		}
		if !changedSet {
			break
		}
	}
	for _, e := range ls.entries {
		if e.restarting && !e.busy && !e.removing && !ls.stopping && isDown(e.actor.settledStatus()) {
			s.restartNow(e)
		}
	}
	nodes := make(map[string]*node, len(ls.entries))
	for name, e := range ls.entries {
		nd := &node{Status: e.actor.settledStatus(), Wanted: e.wanted && !e.restarting, StopReason: e.stopReason, Busy: e.busy}
		if e.restarting {
			nd.StopReason = "restart requested"
		}
		for _, d := range e.actor.comp.Recipe.Dependencies {
			if _, ok := ls.entries[d.Name]; !ok {
				continue
			}
			if d.Type == recipes.DependencySoft {
				nd.Soft = append(nd.Soft, d.Name)
			} else {
				nd.Hard = append(nd.Hard, d.Name)
			}
		}
		nodes[name] = nd
	}
	actions, waiting := reconcile(nodes)
	s.waiting.Store(&waiting)
	for _, act := range actions {
		e := ls.entries[act.Name]
		e.busy = true
		kind := InputStop
		if act.Start {
			kind = InputStart
		}
		s.askLoop(e, Input{Kind: kind, Reason: act.Reason, Dependency: act.Dependency})
	}
	for _, e := range ls.entries {
		st := e.actor.settledStatus()
		if len(e.stopWaiters) > 0 && !e.busy && isDown(st) {
			e.answerStops(commandResult{state: st.State})
		}
		for _, w := range e.startWaiters {
			w <- commandResult{state: st.State}
		}
		e.startWaiters = nil
	}
	if ls.applying != nil && !anyRemoving(ls) {
		ls.applying <- nil
		ls.applying = nil
	}
	if ls.shutdown != nil && allDown(ls) {
		ls.shutdown <- nil
		ls.shutdown = nil
	}
}

func anyRemoving(ls *loopState) bool {
	for _, e := range ls.entries {
		if e.removing {
			return true
		}
	}
	return false
}

func allDown(ls *loopState) bool {
	for _, e := range ls.entries {
		if e.busy || !isDown(e.actor.settledStatus()) {
			return false
		}
	}
	return true
}

// isDown: no process runs and none is about to.
func isDown(st Status) bool {
	return !st.State.Active() && !(st.State == StateErrored && st.Retrying)
}

func (e *entry) answerStops(r commandResult) {
	for _, w := range e.stopWaiters {
		w <- r
	}
	e.stopWaiters = nil
	if r.err != nil { // the component is gone: pending starts and restarts fail too
		for _, w := range append(e.restartWaiters, e.startWaiters...) {
			w <- r
		}
		e.restartWaiters, e.startWaiters, e.restarting = nil, nil, false
	}
}

func (s *Supervisor) publishActors(ls *loopState) {
	list := make([]*Actor, 0, len(ls.entries))
	for _, e := range ls.entries {
		list = append(list, e.actor)
	}
	slices.SortFunc(list, func(a, b *Actor) int {
		switch {
		case a.Name() < b.Name():
			return -1
		case a.Name() > b.Name():
			return 1
		}
		return 0
	})
	s.actors.Store(&list)
	s.broadcast()
}

// quitAll ends every actor; an actor still running a process stops it.
func (s *Supervisor) quitAll(ls *loopState) {
	var wg sync.WaitGroup
	for _, e := range ls.entries {
		wg.Add(1)
		go func(a *Actor) {
			defer wg.Done()
			a.quit()
		}(e.actor)
	}
	wg.Wait()
	for _, e := range ls.entries {
		e.answerStops(commandResult{err: ErrStopped})
	}
	if ls.applying != nil {
		ls.applying <- ErrStopped
	}
	if ls.shutdown != nil {
		ls.shutdown <- nil
	}
}
