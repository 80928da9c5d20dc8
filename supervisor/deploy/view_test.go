package deploy

import (
	"strings"
	"testing"
)

// Between two checkpoints a running deployment says what it does next in
// words, never "the step after fetch:done".
func TestNextStepWorkNamesEveryStepInWords(t *testing.T) {
	for _, step := range []StepName{StepValidate, StepFetch, StepPlan, StepStop, StepStart, StepRollback} {
		w, ok := nextStepWork[checkpoint(step, StepDone)]
		if !ok || w == "" || strings.Contains(w, ":") {
			t.Errorf("after %s:done: %q", step, w)
		}
	}
	if plural(1, "artifact") != "1 artifact" || plural(3, "component") != "3 components" {
		t.Errorf("plural: %q, %q", plural(1, "artifact"), plural(3, "component"))
	}
}
