package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/agent/api"
)

func TestEvents(t *testing.T) {
	f := newFakeAgent(t)
	f.mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", api.ContentNDJSON)
		enc := json.NewEncoder(w)
		_ = enc.Encode(api.Event{At: fixedNow(), Kind: api.EventTransition, Component: "com.example.hello",
			From: "RUNNING", To: "ERRORED", Reason: "exited with status 1: no sensor", Detail: map[string]string{"version": "1.2.0"}})
		_ = enc.Encode(api.Event{At: fixedNow(), Kind: api.EventDeployment, Deployment: "rollout-42", Step: "rollback:started", Reason: "com.example.hello failed"})
		_ = enc.Encode(api.Event{At: fixedNow(), Kind: api.EventWarning, Component: "com.example.hello", Reason: "log line dropped\x1b[31m", Dropped: 3})
	})
	cli := cliRun{sock: f.sock}
	r := cli.run(t, "events")
	r.expect(t, exitOK, []string{
		"transition  com.example.hello 1.2.0  RUNNING -> ERRORED  exited with status 1: no sensor\n",
		"deployment  rollout-42  rollback:started  com.example.hello failed\n",
		"warning  com.example.hello  log line dropped\\x1b[31m  (3 earlier events lost",
	}, none)
	if lines := strings.Count(r.stdout, "\n"); lines != 3 {
		t.Errorf("%d lines, want one an event:\n%s", lines, r.stdout)
	}
	r = cli.run(t, "-o", "json", "events", "--follow")
	r.expect(t, exitOK, []string{`"kind":"transition"`, `"step":"rollback:started"`}, none)
	if sent := f.sent("GET", "/v1/events"); len(sent) != 2 || !strings.Contains(sent[1].query, "follow=1") {
		t.Errorf("requests: %+v", sent)
	}
}
