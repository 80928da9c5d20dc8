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
}

// reconcile decides which components to start and stop so that the set
// converges on: every wanted component runs once its hard dependencies are
// ready (RUNNING and healthy) and its soft dependencies that are going to
// start have started; a component whose hard dependency is not ready, or
// that is not wanted, is stopped, but only after its own dependents that are
// going down too. Starting follows the dependency layers, with independent
// components in parallel; stopping follows them in reverse. It is pure and
// deterministic (names are visited sorted).
func reconcile(nodes map[string]*node) []action {
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.Sort(names)

	dependents := map[string][]string{}
	for _, n := range names {
		for _, d := range nodes[n].Hard {
			dependents[d] = append(dependents[d], n)
		}
		for _, d := range nodes[n].Soft {
			dependents[d] = append(dependents[d], n)
		}
	}

	// keep: wanted, and every hard dependency (transitively) is ready and kept.
	keep := map[string]bool{}
	why := map[string]string{} // why a wanted component cannot be kept
	var keepOf func(n string, seen map[string]bool) bool
	keepOf = func(n string, seen map[string]bool) bool {
		if v, ok := keep[n]; ok {
			return v
		}
		nd := nodes[n]
		if seen[n] || !nd.Wanted {
			keep[n] = false
			return false
		}
		seen[n] = true
		ok := true
		for _, d := range nd.Hard {
			dn := nodes[d]
			if !keepOf(d, seen) || !dn.Status.Ready() {
				ok = false
				if why[n] == "" && dn.Status.Ready() {
					why[n] = fmt.Sprintf("hard dependency %s is going down", d)
				} else if why[n] == "" {
					why[n] = fmt.Sprintf("hard dependency %s is %s", d, describe(dn.Status))
				}
			}
		}
		keep[n] = ok
		return ok
	}
	for _, n := range names {
		keepOf(n, map[string]bool{})
	}

	// willRun: wanted and nothing in its hard dependencies has given up, so
	// soft dependents should wait for it to start.
	willRun := map[string]bool{}
	var willRunOf func(n string, seen map[string]bool) bool
	willRunOf = func(n string, seen map[string]bool) bool {
		if v, ok := willRun[n]; ok {
			return v
		}
		nd := nodes[n]
		if seen[n] || !nd.Wanted || nd.Status.Failed() || nd.Status.State == StateFinished {
			willRun[n] = false
			return false
		}
		seen[n] = true
		ok := true
		for _, d := range nd.Hard {
			ok = ok && willRunOf(d, seen)
		}
		willRun[n] = ok
		return ok
	}

	down := func(n string) bool { return isDown(nodes[n].Status) }

	var out []action
	for _, n := range names {
		nd := nodes[n]
		if nd.Busy {
			continue
		}
		st := nd.Status
		if keep[n] {
			if st.State != StateInstalled && st.State != StateStopped {
				continue
			}
			ready := true
			for _, d := range nd.Soft {
				ds := nodes[d].Status.State
				if willRunOf(d, map[string]bool{}) && (ds == StateNew || ds == StateInstalled || ds == StateStarting || ds == StateStopped) {
					ready = false
				}
			}
			if ready {
				reason := "start requested"
				if len(nd.Hard)+len(nd.Soft) > 0 {
					reason = "dependencies ready"
				}
				out = append(out, action{Name: n, Start: true, Reason: reason})
			}
			continue
		}
		stoppable := st.State == StateRunning || st.State == StateDegraded || (st.State == StateErrored && st.Retrying)
		if !stoppable {
			continue
		}
		blocked := false
		for _, d := range dependents[n] {
			if !keep[d] && (!down(d) || nodes[d].Busy) {
				blocked = true // its dependents go down first (a busy one may be starting)
			}
		}
		if blocked {
			continue
		}
		reason := nd.StopReason
		if nd.Wanted {
			reason = why[n]
		}
		out = append(out, action{Name: n, Start: false, Reason: reason})
	}
	return out
}

func describe(s Status) string {
	if s.State == StateRunning && !s.Ready() {
		return "RUNNING but not healthy yet"
	}
	return s.State.String()
}
