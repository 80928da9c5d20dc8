package deploy

import "testing"

func st(name StepName, status StepStatus, detail ...string) Step {
	s := Step{Name: name, Status: status}
	if len(detail) > 0 {
		s.Detail = detail[0]
	}
	return s
}

func TestResumePoint(t *testing.T) {
	queued := []Step{st(StepValidate, StepDone)}
	fetching := append(queued, st(StepFetch, StepStarted))
	fetchFailed := append(fetching[:len(fetching):len(fetching)], st(StepFetch, StepFailed, "HASH_MISMATCH: fetch: bad"))
	planned := append(fetching[:len(fetching):len(fetching)], st(StepFetch, StepDone), st(StepPlan, StepDone, "[]"))
	stopping := append(planned[:len(planned):len(planned)], st(StepStop, StepStarted))
	starting := append(stopping[:len(stopping):len(stopping)], st(StepStop, StepDone), st(StepStart, StepStarted))
	startFailed := append(starting[:len(starting):len(starting)], st(StepStart, StepFailed, "COMPONENT_FAILED: a is BROKEN"))
	rollingBack := append(startFailed[:len(startFailed):len(startFailed)], st(StepRollback, StepStarted, "COMPONENT_FAILED: a is BROKEN"))
	canceled := append(starting[:len(starting):len(starting)], st(StepStart, StepFailed, "CANCELED: canceled by request"))
	committing := append(starting[:len(starting):len(starting)], st(StepStart, StepDone), st(StepCommit, StepStarted))

	tests := []struct {
		name     string
		steps    []Step
		keep     bool
		want     resumeFrom
		wantCode Code
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
			var code Code
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
