package api

import "time"

// LogLine is one line of GET /v1/components/{name}/logs, which answers one
// JSON object a line (application/x-ndjson): the last tail lines, oldest
// first, and with follow=1 every new line until the client goes away.
type LogLine struct {
	At time.Time `json:"ts"`
	// Stream is "stdout", "stderr", or "keystone" for a note the agent
	// added (dropped bytes, a follower that fell behind).
	Stream string `json:"stream"`
	Text   string `json:"text"`
}

// Content types of the local API's answers.
const (
	// ContentJSON is every answer that is one JSON document.
	ContentJSON = "application/json"
	// ContentNDJSON is the streams: logs and events, one JSON object a line.
	ContentNDJSON = "application/x-ndjson"
)

// MaxBodyBytes is the largest request body the agent reads (a manifest with
// its recipes); a larger one is refused with 413 and CodeTooLarge.
const MaxBodyBytes = 8 << 20

// MaxHeaderBytes bounds a request's line and headers together; a larger
// one is refused with 431 and CodeTooLarge.
const MaxHeaderBytes = 64 << 10
