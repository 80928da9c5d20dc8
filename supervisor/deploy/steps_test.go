package deploy

import (
	"testing"

	"github.com/keystone-edge/keystone/store"
)

func st(name string, status store.StepStatus, detail ...string) store.Step {
	s := store.Step{Name: name, Status: status}
	if len(detail) > 0 {
		s.Detail = detail[0]
	}
	return s
}

func TestResumePoint(t *testing.T) {
	queued := []store.Step{st(StepValidate, store.StepDone)}
	fetching := append(queued, st(StepFetch, store.StepStarted))
	fetchFailed := append(fetching[:len(fetching):len(fetching)], st(StepFetch, store.StepFailed, "HASH_MISMATCH: fetch: bad"))
	planned := append(fetching[:len(fetching):len(fetching)], st(StepFetch, store.StepDone), st(StepPlan, store.StepDone, "[]"))
	stopping := append(planned[:len(planned):len(planned)], st(StepStop, store.StepStarted))
	starting := append(stopping[:len(stopping):len(stopping)], st(StepStop, store.StepDone), st(StepStart, store.StepStarted))
	startFailed := append(starting[:len(starting):len(starting)], st(StepStart, store.StepFailed, "COMPONENT_FAILED: a is BROKEN"))
	rollingBack := append(startFailed[:len(startFailed):len(startFailed)], st(StepRollback, store.StepStarted, "COMPONENT_FAILED: a is BROKEN"))
	canceled := append(starting[:len(starting):len(starting)], st(StepStart, store.StepFailed, "CANCELED: canceled by request"))
	committing := append(starting[:len(starting):len(starting)], st(StepStart, store.StepDone), st(StepCommit, store.StepStarted))

	tests := []struct {
		name     string
		steps    []store.Step
		keep     bool
		want     resumeFrom
		wantCode string
	}{
		{"queued", queued, false, resumeFresh, ""},
		{"while fetching", fetching, false, resumeFresh, ""},
		{"fetch failed before the plan touches nothing", fetchFailed, false, resumeFresh, ""},
		{"planned", planned, false, resumeApply, ""},
		{"while stopping", stopping, false, resumeApply, ""},
		{"while starting", starting, false, resumeApply, ""},
		{"while committing", committing, false, resumeApply, ""},
		{"failed, not yet rolling back", startFailed, false, resumeRollback, CodeComponentFailed},
		{"rolling back", rollingBack, false, resumeRollback, CodeComponentFailed},
		{"failed under keep", startFailed, true, resumeKeep, CodeComponentFailed},
		{"rolling back under keep goes on rolling back", rollingBack, true, resumeRollback, CodeComponentFailed},
		{"canceled under keep still rolls back", canceled, true, resumeRollback, CodeCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, f := resumePoint(tt.steps, tt.keep)
			if got != tt.want {
				t.Fatalf("resumePoint = %v, want %v", got, tt.want)
			}
			code := ""
			if f != nil {
				code = f.code
			}
			if code != tt.wantCode {
				t.Fatalf("failure code = %q, want %q", code, tt.wantCode)
			}
		})
	}
}

func TestFailureDetailRoundTrip(t *testing.T) {
	f := fail(CodeHealthTimeout, "not RUNNING within %s: waiting for [a (STARTING)]", "5s")
	got := parseFailure(failureDetail(f))
	if got.code != CodeHealthTimeout || got.err.Error() != f.err.Error() {
		t.Fatalf("round trip gave %q %q", got.code, got.err)
	}
	if got := parseFailure("something odd: happened"); got.code != CodeInternal {
		t.Fatalf("free text parsed as code %q", got.code)
	}
}
