package supervisor

import (
	"fmt"
	"slices"
)

// node is one component as reconcile sees it.
type node struct {
	Status Status
	// Wanted is false when the component should not run: stopped by hand,
	// being removed or replaced, or the agent is shutting down.
	Wanted bool
	// StopReason says why it is not wanted.
	StopReason string
	// Hard and Soft are the names of its dependencies within the set.
	Hard, Soft []string
	// Busy: a command to it is in flight; leave it alone until answered.
	Busy bool
}

// action is one command reconcile wants sent.
type action struct {
	Name   string
	Start  bool // false: stop
	Reason string
	// Dependency: a stop of a wanted component, because a hard dependency
	// is not ready.
	Dependency bool
}

// reconcile decides which components to start and stop so that the set
// converges on: every wanted component runs once its hard dependencies are
// ready (RUNNING and healthy) and its soft dependencies that are going to
// start have started; a component whose hard dependency is not ready, or
// that is not wanted, is stopped, but only after its own dependents that are
// going down too. Starting follows the dependency layers, with independent
// components in parallel; stopping follows them in reverse. It is pure and
// deterministic (names are visited sorted).
//
// It also returns, for each wanted component that is down and may not start
// yet, what it waits for ("hard dependency com.example.db is STOPPED").
func reconcile(nodes map[string]*node) ([]action, map[string]string) {
	names := sortedNames(nodes)
	dependents := dependentsOf(nodes, names)
	k := newKeeper(nodes)
	for _, n := range names {
		k.of(n, map[string]bool{})
	}
	w := &willRun{nodes: nodes, memo: map[string]bool{}}
	var out []action
	waiting := map[string]string{}
	for _, n := range names {
		nd := nodes[n]
		if nd.Wanted && !nd.Status.State.Active() && !nd.Status.Failed() {
			if why := k.why[n]; why != "" {
				waiting[n] = why
			} else if d := softPending(n, nodes, w); d != "" {
				waiting[n] = "soft dependency " + d + " has not started yet"
			}
		}
		if nd.Busy {
			continue
		}
		var act action
		var ok bool
		if k.keep[n] {
			act, ok = startAction(n, nodes, w)
		} else {
			act, ok = stopAction(n, nodes, dependents[n], k)
		}
		if ok {
			out = append(out, act)
		}
	}
	return out, waiting
}

// sortedNames returns the names of nodes, sorted.
func sortedNames(nodes map[string]*node) []string {
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// dependentsOf maps each name to the components that depend on it, hard or
// soft, in the order of names.
func dependentsOf(nodes map[string]*node, names []string) map[string][]string {
	dependents := map[string][]string{}
	for _, n := range names {
		for _, d := range nodes[n].Hard {
			dependents[d] = append(dependents[d], n)
		}
		for _, d := range nodes[n].Soft {
			dependents[d] = append(dependents[d], n)
		}
	}
	return dependents
}

// keeper finds the components to keep: wanted, and every hard dependency
// (transitively) is ready and kept.
type keeper struct {
	nodes map[string]*node
	keep  map[string]bool
	why   map[string]string // why a wanted component cannot be kept
}

func newKeeper(nodes map[string]*node) *keeper {
	return &keeper{nodes: nodes, keep: map[string]bool{}, why: map[string]string{}}
}

// of reports whether n is kept, working it out (and its hard dependencies)
// the first time.
func (k *keeper) of(n string, seen map[string]bool) bool {
	if v, ok := k.keep[n]; ok {
		return v
	}
	nd := k.nodes[n]
	if seen[n] || !nd.Wanted {
		k.keep[n] = false
		return false
	}
	seen[n] = true
	ok := true
	for _, d := range nd.Hard {
		dn := k.nodes[d]
		if !k.of(d, seen) || !dn.Status.Ready() {
			ok = false
			if k.why[n] == "" && dn.Status.Ready() {
				k.why[n] = fmt.Sprintf("hard dependency %s is going down", d)
			} else if k.why[n] == "" {
				k.why[n] = fmt.Sprintf("hard dependency %s is %s", d, describe(dn.Status))
			}
		}
	}
	k.keep[n] = ok
	return ok
}

// willRun finds the components that are wanted and have nothing in their
// hard dependencies that gave up, so soft dependents should wait for them
// to start.
type willRun struct {
	nodes map[string]*node
	memo  map[string]bool
}

func (w *willRun) of(n string, seen map[string]bool) bool {
	if v, ok := w.memo[n]; ok {
		return v
	}
	nd := w.nodes[n]
	if seen[n] || !nd.Wanted || nd.Status.Failed() || nd.Status.State == StateFinished {
		w.memo[n] = false
		return false
	}
	seen[n] = true
	ok := true
	for _, d := range nd.Hard {
		ok = ok && w.of(d, seen)
	}
	w.memo[n] = ok
	return ok
}

// startAction is the start of kept component n, if it is down and its soft
// dependencies that will run have started.
func startAction(n string, nodes map[string]*node, w *willRun) (action, bool) {
	nd := nodes[n]
	if st := nd.Status.State; st != StateInstalled && st != StateStopped {
		return action{}, false
	}
	if softPending(n, nodes, w) != "" {
		return action{}, false
	}
	reason := "start requested"
	if len(nd.Hard)+len(nd.Soft) > 0 {
		reason = "dependencies ready"
	}
	return action{Name: n, Start: true, Reason: reason}, true
}

// softPending names a soft dependency of n that will run but has not
// started yet, or returns "".
func softPending(n string, nodes map[string]*node, w *willRun) string {
	for _, d := range nodes[n].Soft {
		ds := nodes[d].Status.State
		if w.of(d, map[string]bool{}) && (ds == StateNew || ds == StateInstalled || ds == StateStarting || ds == StateStopped) {
			return d
		}
	}
	return ""
}

// stopAction is the stop of component n that is not kept, if something of
// it runs and its dependents going down are down already (a busy one may
// be starting).
func stopAction(n string, nodes map[string]*node, dependents []string, k *keeper) (action, bool) {
	nd := nodes[n]
	st := nd.Status
	stoppable := st.State == StateRunning || st.State == StateDegraded || (st.State == StateErrored && st.Retrying)
	if !stoppable {
		return action{}, false
	}
	for _, d := range dependents {
		if !k.keep[d] && (!isDown(nodes[d].Status) || nodes[d].Busy) {
			return action{}, false
		}
	}
	if !nd.Wanted {
		return action{Name: n, Reason: nd.StopReason}, true
	}
	return action{Name: n, Reason: k.why[n], Dependency: true}, true
}

func describe(s Status) string {
	switch {
	case s.HealthDetail != "":
		return s.State.String() + ": " + s.HealthDetail
	case s.State == StateRunning && !s.Ready():
		return "RUNNING but not healthy yet"
	}
	return s.State.String()
}
