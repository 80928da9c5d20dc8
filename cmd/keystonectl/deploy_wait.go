package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
)

// Deployment statuses on the wire (api.Deployment.Status).
const (
	statusQueued     = "QUEUED"
	statusInProgress = "IN_PROGRESS"
	statusSucceeded  = "SUCCEEDED"
	statusFailed     = "FAILED"
	statusCanceled   = "CANCELED"
)

// finished reports whether a deployment status is final.
func finished(status string) bool {
	return status == statusSucceeded || status == statusFailed || status == statusCanceled
}

// How waiting for a deployment asks the agent. Events from /v1/events wake
// the wait at once; the polls only cover events that were missed, and the
// time before the event stream is open (or when the agent offers none).
const (
	pollWithoutEvents = 250 * time.Millisecond
	pollWithEvents    = 2 * time.Second
	// unreachableGrace is how long the agent may be unreachable during a
	// wait (it may be restarting) before the wait gives up.
	unreachableGrace = 30 * time.Second
)

// errWaitTimeout and errWaitInterrupted end a wait that did not see the
// deployment finish; it goes on in the agent.
var (
	errWaitTimeout     = errors.New("timed out waiting")
	errWaitInterrupted = errors.New("interrupted")
)

// waitForDeployment waits until deployment id is finished and returns it as
// last seen. It follows the agent's events to notice progress at once,
// and calls show with every new view of the deployment (for a progress
// display). timeout 0 waits as long as ctx allows. When the wait ends
// before the deployment does, the error says so and how to look again.
func waitForDeployment(ctx context.Context, c *api.Client, id string, timeout time.Duration, show func(api.Deployment)) (api.Deployment, error) {
	waitCtx, cancel := context.WithCancel(ctx)
	if timeout > 0 {
		waitCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	pokes := make(chan struct{}, 1)
	subscribed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		followEvents(waitCtx, c, id, subscribed, pokes)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	poll := pollWithoutEvents
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last api.Deployment
	var unreachableSince time.Time
	for {
		select {
		case <-waitCtx.Done():
			return last, waitEnded(ctx, id)
		case <-pokes:
		case <-subscribed:
			subscribed = nil // look once more: events before the stream opened are not in it
			poll = pollWithEvents
		case <-timer.C:
		}
		d, err := c.Deployment(waitCtx, id)
		switch {
		case waitCtx.Err() != nil:
			return last, waitEnded(ctx, id)
		case err != nil && api.ErrorCode(err) == "":
			// Not an answer: the agent may be restarting. Keep asking a while.
			if unreachableSince.IsZero() {
				unreachableSince = time.Now()
			}
			if time.Since(unreachableSince) > unreachableGrace {
				return last, agentError("wait for deployment "+id, err)
			}
			timer.Reset(pollWithoutEvents)
			continue
		case err != nil:
			return last, deploymentError(err)
		}
		unreachableSince = time.Time{}
		last = d
		if show != nil {
			show(d)
		}
		if finished(d.Status) {
			return d, nil
		}
		timer.Reset(poll)
	}
}

// waitEnded says why a wait ended before deployment id did.
func waitEnded(ctx context.Context, id string) error {
	why := errWaitTimeout
	if ctx.Err() != nil {
		why = errWaitInterrupted
	}
	if why == errWaitTimeout {
		return fmt.Errorf("%w for deployment %s; it is still running: keystonectl deploy status %s", why, id, id)
	}
	return fmt.Errorf("stopped waiting for deployment %s (%w); it is still running: keystonectl deploy status %s", id, why, id)
}

// followEvents reads the agent's event stream and pokes the waiter on each
// event about deployment id or about a component (which the progress
// display shows). It closes subscribed once the stream is open, and returns
// when ctx ends or the stream does.
func followEvents(ctx context.Context, c *api.Client, id string, subscribed chan<- struct{}, pokes chan<- struct{}) {
	s, err := c.Events(ctx, true)
	if err != nil {
		return // the waiter keeps polling
	}
	defer s.Close()
	close(subscribed)
	for {
		e, err := s.Next()
		if err != nil {
			return
		}
		if e.Deployment == id || e.Kind == api.EventTransition || e.Dropped > 0 {
			select {
			case pokes <- struct{}{}:
			default:
			}
		}
	}
}

// progress draws one status line of a deployment on a terminal, redrawn in
// place as it changes.
type progress struct {
	w     io.Writer
	start time.Time
	now   func() time.Time
	drawn bool
}

func newProgress(w io.Writer, now func() time.Time) *progress {
	return &progress{w: w, start: now(), now: now}
}

// show redraws the line for d.
func (p *progress) show(d api.Deployment) {
	fmt.Fprint(p.w, "\r\x1b[K"+terminalSafe(progressLine(d, p.now(), p.now().Sub(p.start)), false))
	p.drawn = true
}

// clear removes the line, before the result is printed.
func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

// progressLine is the one-line view of a deployment being waited for:
// "rollout-42  IN_PROGRESS  4.2s  start com.example.hello: waiting for
// com.example.hello RUNNING (3s)".
func progressLine(d api.Deployment, now time.Time, waited time.Duration) string {
	parts := []string{d.ID, d.Status, elapsed(waited)}
	if step := currentStep(d); step != "" {
		parts = append(parts, step)
	}
	line := strings.Join(parts, "  ")
	if d.WaitingFor != "" {
		line += ": waiting for " + d.WaitingFor
		if d.Since != nil {
			line += " (" + shortDuration(now.Sub(*d.Since)) + ")"
		}
	}
	return line
}

// currentStep names the step a deployment is on: its last checkpoint, with
// the component it concerns, and "(done)" or "(failed)" once it finished.
func currentStep(d api.Deployment) string {
	if len(d.Steps) == 0 {
		return ""
	}
	st := d.Steps[len(d.Steps)-1]
	s := st.Name
	if st.Component != "" {
		s += " " + st.Component
	}
	if st.Status != "started" {
		s += " (" + st.Status + ")"
	}
	return s
}
