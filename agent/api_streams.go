package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/keystone-edge/keystone/agent/api"
	"github.com/keystone-edge/keystone/runner/logs"
)

// Bounds of the stream endpoints.
const (
	defaultLogTail    = 100
	maxLogTail        = 100_000
	defaultEventCount = 100
	maxEventCount     = 10_000
	followBuffer      = 256
)

// ndjson writes one JSON object a line, flushing so a follower sees each
// line when it happens.
type ndjson struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder
}

// startStream answers 200 with the stream content type. A follower has no
// end, so the server's write deadline is lifted for it alone.
func startStream(w http.ResponseWriter, follow bool) *ndjson {
	rc := http.NewResponseController(w)
	if follow {
		_ = rc.SetWriteDeadline(time.Time{})
	}
	w.Header().Set("Content-Type", api.ContentNDJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // the follower knows it is subscribed once it has the headers
	return &ndjson{w: w, rc: rc, enc: json.NewEncoder(w)}
}

// send writes v; flush says whether to push it out now. An error means the
// client went away.
func (n *ndjson) send(v any, flush bool) error {
	if err := n.enc.Encode(v); err != nil {
		return err
	}
	if flush {
		return n.rc.Flush()
	}
	return nil
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
	// Only supervised components have logs: never create one for a typo.
	if _, err := s.sup.Component(name); err != nil {
		writeError(w, s.log, r, fmt.Errorf("logs: %w", err))
		return
	}
	lg, err := s.logs.Log(name)
	if err != nil {
		writeError(w, s.log, r, fmt.Errorf("logs of %s: %w", name, err))
		return
	}
	if !follow {
		out := startStream(w, false)
		for _, l := range lg.Tail(tail) {
			if out.send(wireLogLine(l), false) != nil {
				return
			}
		}
		return
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	lines := lg.Follow(ctx, tail)
	out := startStream(w, true)
	for l := range lines {
		if out.send(wireLogLine(l), len(lines) == 0) != nil {
			return
		}
	}
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
		evs := s.bus.Subscribe(ctx, followBuffer)
		out := startStream(w, true)
		for e := range evs {
			if out.send(e, len(evs) == 0) != nil {
				return
			}
		}
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
	out := startStream(w, false)
	for _, e := range recent {
		if out.send(fromStoreEvent(e), false) != nil {
			return
		}
	}
}
