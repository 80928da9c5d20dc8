package deploy

import (
	"testing"
)

// A plugin reads its effective configuration as ctx.config, so a changed
// value is a reconfiguration even when no interpolated field changes.
func TestPlanNamesAConfigChange(t *testing.T) {
	have, want := pc("com.example.a", "1.0.0"), pc("com.example.a", "1.0.0")
	have.Config = map[string]any{"site": "lab"}
	want.Config = map[string]any{"site": "kyiv"}
	got := computePlan(comps(have), comps(want), nil)
	exp := PlanItem{Component: "com.example.a", Action: ActionReconfigure, FromVersion: "1.0.0", ToVersion: "1.0.0",
		Reason: "changed: config"}
	if len(got) != 1 || got[0] != exp {
		t.Fatalf("plan = %+v, want %+v", got, exp)
	}
}
