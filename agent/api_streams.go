package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/runner/logs"
	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Bounds of the stream endpoints.
const (
	defaultLogTail    = 100
	maxLogTail        = 100_000
	defaultEventCount = 100
	maxEventCount     = 10_000
	followBuffer      = 256
)

// startStream answers 200 with the stream content type. A follower has no
// end, so the server's write deadline is lifted for it alone.
func startStream(w http.ResponseWriter, follow bool) (*json.Encoder, *http.ResponseController) {
	rc := http.NewResponseController(w)
	if follow {
		_ = rc.SetWriteDeadline(time.Time{})
	}
	w.Header().Set("Content-Type", api.ContentNDJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // the follower knows it is subscribed once it has the headers
	return json.NewEncoder(w), rc
}

// sendList streams a finished list, one JSON object a line, until the
// client goes away.
func sendList[T, W any](w http.ResponseWriter, list []T, wire func(T) W) {
	enc, _ := startStream(w, false)
	for _, v := range list {
		if enc.Encode(wire(v)) != nil {
			return
		}
	}
}

// sendFollowed streams what ch carries until it closes (its subscription
// ended) or the client goes away. A line is flushed once no other waits,
// so that a follower sees each one when it happens.
func sendFollowed[T, W any](w http.ResponseWriter, ch <-chan T, wire func(T) W) {
	enc, rc := startStream(w, true)
	for v := range ch {
		if enc.Encode(wire(v)) != nil {
			return
		}
		if len(ch) == 0 && rc.Flush() != nil {
			return
		}
	}
}

func wireLogLine(l logs.Line) api.LogLine {
	return api.LogLine{At: l.Time, Stream: l.Stream.String(), Text: l.Text}
}

func (s *apiServer) componentLogs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	tail, err := intParam(r, "tail", defaultLogTail, maxLogTail)
	if err != nil {
		writeError(w, s.log, r, err)
		return
	}
	follow, err := boolParam(r, "follow")
	if err != nil {
		writeError(w, s.log, r, err)
		return
	}
	// Supervised components have logs, and removed ones keep theirs for a
	// while; never create one for a typo.
	_, err = s.sup.Component(name)
	removed := errors.Is(err, supervisor.ErrNotFound) && s.logs.Known(name)
	if err != nil && !removed {
		writeError(w, s.log, r, fmt.Errorf("logs: %w", err))
		return
	}
	lg, err := s.logs.Log(name)
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("logs of %s: %w", name, err))
		return
	}
	if removed || !follow {
		lines := lg.Tail(tail)
		if removed {
			note := logs.Line{Time: time.Now(), Stream: logs.Agent,
				Text: name + " is no longer deployed; these are the last lines it wrote"}
			if len(lines) > 0 {
				note.Time = lines[0].Time
			}
			lines = append([]logs.Line{note}, lines...)
		}
		sendList(w, lines, wireLogLine)
		return
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	sendFollowed(w, lg.Follow(ctx, tail), wireLogLine)
}

func (s *apiServer) streamEvents(w http.ResponseWriter, r *http.Request) {
	follow, err := boolParam(r, "follow")
	if err != nil {
		writeError(w, s.log, r, err)
		return
	}
	if follow {
		ctx, cancel := s.streamContext(r)
		defer cancel()
		sendFollowed(w, s.bus.Subscribe(ctx, followBuffer), func(e events.Event) events.Event { return e })
		return
	}
	limit, err := intParam(r, "limit", defaultEventCount, maxEventCount)
	if err != nil {
		writeError(w, s.log, r, err)
		return
	}
	recent, err := s.history.Recent(r.Context(), limit)
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("recent events: %w", err))
		return
	}
	sendList(w, recent, fromStoreEvent)
}
