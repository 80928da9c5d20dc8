package comms

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

func TestDecideIntake(t *testing.T) {
	job := func(id, kind string, created time.Time) *message.Job {
		return &message.Job{JobID: id, Kind: kind, DeviceID: deviceID, CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
	}
	finished := &store.Job{ID: "j1", Status: store.JobSucceeded, Final: json.RawMessage(`{"status":"SUCCEEDED"}`)}
	running := &store.Job{ID: "j1", Status: store.JobInProgress}
	rejected := &store.Job{ID: "j1", Status: store.JobRejected, Final: json.RawMessage(`{"status":"REJECTED"}`)}
	badSig := &message.RejectError{Code: message.CodeSignatureInvalid, Err: errors.New("job j1: signature: not signed")}
	expired := &message.RejectError{Code: message.CodeExpired, Err: errors.New("job j1 expired at …")}
	malformed := &message.RejectError{Code: message.CodeMalformed, Err: errors.New("job document is not valid JSON")}

	for _, tc := range []struct {
		name   string
		in     intakeInput
		action intakeAction
		code   string
		reason string
	}{
		{"unreadable document", intakeInput{ParseErr: malformed}, intakeDrop, "", "not valid JSON"},
		{"id that cannot be a topic level", intakeInput{Job: job("a/b", message.KindDeployment, t0), ParseErr: malformed}, intakeDrop, "", `"a/b"`},
		{"new and good", intakeInput{Job: job("j1", message.KindDeployment, t0)}, intakeAccept, "", ""},
		{"cancel job", intakeInput{Job: job("j1", message.KindCancel, t0)}, intakeAccept, "", ""},
		{"known and finished, sent again", intakeInput{Job: job("j1", message.KindDeployment, t0), Known: finished}, intakeResend, "", ""},
		{"known and finished, retained copy at a subscription", intakeInput{Job: job("j1", message.KindDeployment, t0), Known: finished, Retained: true}, intakeIgnore, "", ""},
		{"known and still running", intakeInput{Job: job("j1", message.KindDeployment, t0), Known: running}, intakeIgnore, "", ""},
		{"known and rejected, sent again", intakeInput{Job: job("j1", message.KindDeployment, t0), Known: rejected}, intakeResend, "", ""},
		{"known wins over expired", intakeInput{Job: job("j1", message.KindDeployment, t0), ParseErr: expired, Known: finished}, intakeResend, "", ""},
		{"known wins over stale", intakeInput{Job: job("j1", message.KindDeployment, t0), Known: finished, NewestAccepted: t0.Add(time.Hour)}, intakeResend, "", ""},
		{"bad signature", intakeInput{Job: job("j1", message.KindDeployment, t0), ParseErr: badSig}, intakeReject, message.CodeSignatureInvalid, "not signed"},
		{"expired", intakeInput{Job: job("j1", message.KindDeployment, t0), ParseErr: expired}, intakeReject, message.CodeExpired, "expired"},
		{"refusal over staleness", intakeInput{Job: job("j1", message.KindDeployment, t0), ParseErr: badSig, NewestAccepted: t0.Add(time.Hour)}, intakeReject, message.CodeSignatureInvalid, ""},
		{"stale", intakeInput{Job: job("j1", message.KindDeployment, t0), NewestAccepted: t0.Add(time.Second)}, intakeReject, message.CodeStale, "before the newest job"},
		{"as new as the newest", intakeInput{Job: job("j1", message.KindDeployment, t0), NewestAccepted: t0}, intakeAccept, "", ""},
		{"newer by less than the store keeps", intakeInput{Job: job("j1", message.KindDeployment, t0.Add(300*time.Microsecond)), NewestAccepted: t0}, intakeAccept, "", ""},
		{"older by less than the store keeps", intakeInput{Job: job("j1", message.KindDeployment, t0.Add(300*time.Microsecond)), NewestAccepted: t0.Add(time.Millisecond)}, intakeReject, message.CodeStale, ""},
		{"agent update", intakeInput{Job: job("j1", message.KindAgentUpdate, t0)}, intakeReject, message.CodeUnsupported, "does not update itself"},
		{"stale agent update", intakeInput{Job: job("j1", message.KindAgentUpdate, t0), NewestAccepted: t0.Add(time.Second)}, intakeReject, message.CodeStale, ""},
		{"agent update on an agent that updates itself", intakeInput{Job: job("j1", message.KindAgentUpdate, t0), SelfUpdate: true}, intakeAccept, "", ""},
	} {
		got := decideIntake(tc.in)
		if got.Action != tc.action || got.Code != tc.code || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: %s %s %q; want %s %s containing %q", tc.name, got.Action, got.Code, got.Reason, tc.action, tc.code, tc.reason)
		}
	}
}

func TestSuperseded(t *testing.T) {
	q := func(id string, created time.Duration, st deploy.Status) queuedDeployment {
		return queuedDeployment{JobID: id, CreatedAt: t0.Add(created), Status: st}
	}
	for _, tc := range []struct {
		name    string
		created time.Duration
		earlier []queuedDeployment
		want    []string
	}{
		{"nothing earlier", 10, nil, nil},
		{"an older queued one", 10, []queuedDeployment{q("a", 5, deploy.StatusQueued)}, []string{"a"}},
		{"one created at the same time", 10, []queuedDeployment{q("a", 10, deploy.StatusQueued)}, []string{"a"}},
		{"a running one is left alone", 10, []queuedDeployment{q("a", 5, deploy.StatusInProgress)}, nil},
		{"a finished one is left alone", 10, []queuedDeployment{q("a", 5, deploy.StatusSucceeded)}, nil},
		{"a newer queued one is left alone", 10, []queuedDeployment{q("a", 15, deploy.StatusQueued)}, nil},
		{"several, sorted", 10, []queuedDeployment{q("c", 1, deploy.StatusQueued), q("a", 2, deploy.StatusQueued),
			q("b", 3, deploy.StatusInProgress)}, []string{"a", "c"}},
	} {
		if got := superseded(t0.Add(tc.created), tc.earlier); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHealthy(t *testing.T) {
	c := func(state string) message.ComponentStatus { return message.ComponentStatus{Name: state, State: state} }
	for _, tc := range []struct {
		comps []message.ComponentStatus
		want  bool
	}{
		{nil, true},
		{[]message.ComponentStatus{c("RUNNING"), c("FINISHED")}, true},
		{[]message.ComponentStatus{c("RUNNING"), c("STARTING")}, false},
		{[]message.ComponentStatus{c("BROKEN")}, false},
		{[]message.ComponentStatus{c("ERRORED"), c("RUNNING")}, false},
	} {
		if got := healthy(tc.comps); got != tc.want {
			t.Errorf("healthy(%v) = %v", tc.comps, got)
		}
	}
}

func TestStateDue(t *testing.T) {
	for _, tc := range []struct {
		since, want time.Duration
		never       bool
	}{
		{never: true, want: 0},
		{since: 0, want: time.Second},
		{since: 300 * time.Millisecond, want: 700 * time.Millisecond},
		{since: time.Second, want: 0},
		{since: time.Hour, want: 0},
	} {
		last := t0.Add(-tc.since)
		if tc.never {
			last = time.Time{}
		}
		if got := stateDue(t0, last, time.Second); got != tc.want {
			t.Errorf("%s after the last state: wait %s, want %s", tc.since, got, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(20, 20)
	allowed := func(n int, at time.Time) int {
		k := 0
		for range n {
			if l.allow(at) {
				k++
			}
		}
		return k
	}
	if got := allowed(100, t0); got != 20 {
		t.Errorf("a burst of 100: %d allowed, want 20", got)
	}
	if got := allowed(100, t0.Add(100*time.Millisecond)); got != 2 {
		t.Errorf("100 ms later: %d allowed, want 2", got)
	}
	if got := allowed(100, t0.Add(time.Hour)); got != 20 {
		t.Errorf("an hour later: %d allowed, want the burst of 20", got)
	}
	if got := allowed(5, t0); got != 0 { // the clock went back: no tokens for it
		t.Errorf("a clock going back: %d allowed, want 0", got)
	}
}

func TestWithSeq(t *testing.T) {
	st := message.JobStatus{DeviceID: deviceID, JobID: "j1", Status: "QUEUED", Detail: "<a & b>"}
	out := withSeq(mustJSON(t, st), 42)
	var back message.JobStatus
	if err := json.Unmarshal(out, &back); err != nil || back.Seq != 42 || back.Detail != "<a & b>" || back.JobID != "j1" {
		t.Errorf("withSeq: %s (%v)", out, err)
	}
	for _, raw := range []string{"", "[1]", "not json"} {
		if got := string(withSeq([]byte(raw), 7)); got != raw {
			t.Errorf("withSeq(%q) = %q; want it unchanged", raw, got)
		}
	}
}

func TestJobError(t *testing.T) {
	invalid := &deploy.ValidationError{Problems: []deploy.Problem{{Code: deploy.CodeValidation, Message: "x"}, {Code: "HASH_MISMATCH", Message: "y"}}}
	for _, tc := range []struct {
		err  error
		code string
	}{
		{invalid, "HASH_MISMATCH"},
		{fmt.Errorf("wrapped: %w", invalid), "HASH_MISMATCH"},
		{fmt.Errorf("no deployment x: %w", deploy.ErrNotFound), CodeNotFound},
		{fmt.Errorf("x is already SUCCEEDED: %w", deploy.ErrConflict), CodeConflict},
		{errors.New("disk I/O error"), CodeInternal},
	} {
		if code, detail := jobError(tc.err); code != tc.code || detail != tc.err.Error() {
			t.Errorf("jobError(%v) = %s, %q; want %s", tc.err, code, detail, tc.code)
		}
	}
}

func TestReconnectBackoffStartsAtOnceAndGrows(t *testing.T) {
	b := reconnectPolicy{Initial: time.Second, Max: 8 * time.Second}.backoff()
	if d := b(0); d != 0 {
		t.Errorf("attempt 0 waits %s; want none", d)
	}
	for attempt, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		d := b(attempt + 1)
		if d < base/2 || d > base*3/2 {
			t.Errorf("attempt %d waits %s; want %s ± 50%%", attempt+1, d, base)
		}
	}
	if d := b(0); d != 0 {
		t.Errorf("after a connection attempt 0 waits %s; want none", d)
	}
	if d := b(1); d < 500*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("after a connection attempt 1 waits %s; want the initial delay again", d)
	}
}
