package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// testdata/v1-data/keystone.db was written by the agent as it was before
// the engine had types of its own, when the plan was checkpointed as the
// local API's JSON: a deployment "old-first" (com.test.a and com.test.b at
// 1.0.0) that succeeded, then "old-failed" (a at 2.0.0 exits at once) that
// failed and rolled back. An agent updated over that data folder must read
// it all and run the committed set again.
func TestReadsDataOfOlderAgents(t *testing.T) {
	db, err := os.ReadFile("testdata/v1-data/keystone.db")
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(o *rigOptions) {
		o.before = func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, "keystone.db"), db, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	})
	select {
	case <-r.eng.Started():
	case <-time.After(30 * time.Second):
		t.Fatal("the engine did not start over the old data folder")
	}
	list, err := r.eng.List(context.Background(), 0)
	if err != nil || len(list) != 2 || list[0].ID != "old-failed" || list[1].ID != "old-first" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	first, failed := list[1], list[0]

	mustSucceed(t, first)
	wantPlan := []deploy.PlanItem{
		{Component: "com.test.a", Action: deploy.ActionAdd, ToVersion: "1.0.0", Reason: "not installed"},
		{Component: "com.test.b", Action: deploy.ActionAdd, ToVersion: "1.0.0", Reason: "not installed"},
	}
	if !slices.Equal(first.Plan, wantPlan) {
		t.Errorf("old-first plan = %+v", first.Plan)
	}
	if got := stepsOf(first); got != "validate:done fetch:started fetch:done plan:done stop:started stop:done "+
		"start:started start:done commit:started commit:done" {
		t.Errorf("old-first steps: %s", got)
	}
	if first.Steps[3].Detail != "2 add" || first.FinishedAt.IsZero() {
		t.Errorf("old-first plan step %+v, finished at %v", first.Steps[3], first.FinishedAt)
	}

	if failed.Status != deploy.StatusFailed || !failed.RolledBack || failed.ErrorCode != deploy.CodeComponentFailed {
		t.Errorf("old-failed: %s rolled_back=%v %s: %s", failed.Status, failed.RolledBack, failed.ErrorCode, failed.Error)
	}
	wantPlan = []deploy.PlanItem{
		{Component: "com.test.a", Action: deploy.ActionUpdate, FromVersion: "1.0.0", ToVersion: "2.0.0", Reason: "version 1.0.0 -> 2.0.0"},
		{Component: "com.test.b", Action: deploy.ActionRestart, FromVersion: "1.0.0", ToVersion: "1.0.0", Reason: "hard dependency com.test.a restarts"},
	}
	if !slices.Equal(failed.Plan, wantPlan) {
		t.Errorf("old-failed plan = %+v", failed.Plan)
	}
	if last := failed.Steps[len(failed.Steps)-1]; last.Name != deploy.StepRollback || last.Status != deploy.StepDone {
		t.Errorf("old-failed steps: %s", stepsOf(failed))
	}
	if d, err := r.eng.Get(context.Background(), "old-failed"); err != nil || !slices.Equal(d.Plan, wantPlan) {
		t.Errorf("Get(old-failed) = %+v, %v", d, err)
	}

	// The committed set is restored and runs.
	cur := r.eng.Current()
	if cur.DeploymentID != "old-first" || len(cur.Components) != 2 || cur.Components[0].Version != "1.0.0" {
		t.Fatalf("Current() = %+v", cur)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.sup.WaitReady(ctx, []string{"com.test.a", "com.test.b"}); err != nil {
		t.Fatal(err)
	}
	for name, st := range r.statuses() {
		if st.Version != "1.0.0" || st.State != supervisor.StateRunning {
			t.Errorf("%s after the restore: %s@%s", name, st.State, st.Version)
		}
	}
}
