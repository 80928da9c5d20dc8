package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

func TestDeploymentsRoundTrip(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))

	d := store.Deployment{
		ID:       "rollout-42",
		Manifest: "format = 1\n[deployment]\nid = \"rollout-42\"\n",
		Recipes:  map[string]string{"com.example.hello": "format = 1\n[metadata]\nname = \"com.example.hello\"\n"},
		Status:   store.DeploymentQueued,
		Previous: json.RawMessage(`[{"name":"com.example.hello","version":"1.1.0"}]`),
	}
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDeployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := d
	want.CreatedAt, want.UpdatedAt = clk.Now(), clk.Now()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetDeployment =\n%+v\nwant\n%+v", got, want)
	}

	// The id is the idempotency key.
	dup := d
	dup.Manifest = "something else"
	if err := s.CreateDeployment(ctx, dup); !errors.Is(err, store.ErrExists) {
		t.Errorf("second create: err = %v, want ErrExists", err)
	}
	if got, _ := s.GetDeployment(ctx, d.ID); got.Manifest != d.Manifest {
		t.Errorf("duplicate create changed the manifest to %q", got.Manifest)
	}

	// In progress: not finished; the previous set may be recorded now.
	t1 := clk.Advance(time.Second)
	prev := json.RawMessage(`[]`)
	if err := s.UpdateDeploymentStatus(ctx, d.ID, store.DeploymentUpdate{Status: store.DeploymentInProgress, Previous: prev}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetDeployment(ctx, d.ID)
	if got.Status != store.DeploymentInProgress || !got.UpdatedAt.Equal(t1) || !got.FinishedAt.IsZero() || string(got.Previous) != "[]" {
		t.Errorf("after IN_PROGRESS: %+v", got)
	}

	// Failed with rollback: finished, error recorded, previous kept.
	t2 := clk.Advance(time.Second)
	if err := s.UpdateDeploymentStatus(ctx, d.ID, store.DeploymentUpdate{
		Status: store.DeploymentFailed, RolledBack: true, Error: "health timeout", ErrorCode: "HEALTH_TIMEOUT",
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetDeployment(ctx, d.ID)
	if got.Status != store.DeploymentFailed || !got.RolledBack || got.Error != "health timeout" ||
		got.ErrorCode != "HEALTH_TIMEOUT" || !got.FinishedAt.Equal(t2) || string(got.Previous) != "[]" {
		t.Errorf("after FAILED: %+v", got)
	}

	if err := s.UpdateDeploymentStatus(ctx, "missing", store.DeploymentUpdate{Status: store.DeploymentFailed}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of a missing deployment: err = %v, want ErrNotFound", err)
	}
	if err := s.UpdateDeploymentStatus(ctx, d.ID, store.DeploymentUpdate{Status: "DONE"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown status: err = %v, want ErrInvalid", err)
	}
	if _, err := s.GetDeployment(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDeployment(missing): err = %v, want ErrNotFound", err)
	}
	if err := s.CreateDeployment(ctx, store.Deployment{ID: "x", Status: "WHATEVER"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("create with unknown status: err = %v, want ErrInvalid", err)
	}
}

func TestDeploymentQueries(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))

	create := func(id string, status store.DeploymentStatus) {
		t.Helper()
		clk.Advance(time.Minute)
		if err := s.CreateDeployment(ctx, store.Deployment{ID: id, Manifest: id, Status: store.DeploymentQueued}); err != nil {
			t.Fatal(err)
		}
		if status != store.DeploymentQueued {
			if err := s.UpdateDeploymentStatus(ctx, id, store.DeploymentUpdate{Status: status}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.LastSuccessfulDeployment(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastSuccessfulDeployment on empty: err = %v, want ErrNotFound", err)
	}
	create("d1", store.DeploymentSucceeded)
	create("d2", store.DeploymentSucceeded)
	create("d3", store.DeploymentFailed)
	create("d4", store.DeploymentInProgress)
	create("d5", store.DeploymentQueued)
	create("d6", store.DeploymentCanceled)

	ids := func(ds []store.Deployment) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	list, err := s.ListDeployments(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{"d6", "d5", "d4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ListDeployments(3) = %v, want %v (newest first)", got, want)
	}
	all, err := s.ListDeployments(ctx, 0)
	if err != nil || len(all) != 6 {
		t.Errorf("ListDeployments(0) = %d deployments, %v; want all 6", len(all), err)
	}
	unfinished, err := s.UnfinishedDeployments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(unfinished), []string{"d4", "d5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("UnfinishedDeployments = %v, want %v (oldest first)", got, want)
	}
	last, err := s.LastSuccessfulDeployment(ctx)
	if err != nil || last.ID != "d2" {
		t.Errorf("LastSuccessfulDeployment = %q, %v; want d2", last.ID, err)
	}
}

func TestSteps(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))
	for _, id := range []string{"a", "b"} {
		if err := s.CreateDeployment(ctx, store.Deployment{ID: id, Status: store.DeploymentInProgress}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []store.Step{
		{Name: "download", Status: store.StepStarted},
		{Name: "download", Status: store.StepDone, Detail: "3 artifacts"},
		{Name: "install", Component: "com.example.hello", Status: store.StepFailed, Detail: "exit 2",
			At: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for i, st := range steps {
		clk.Advance(time.Second)
		seq, err := s.AppendStep(ctx, "a", st)
		if err != nil {
			t.Fatal(err)
		}
		if seq != int64(i+1) {
			t.Errorf("step %d got seq %d", i+1, seq)
		}
	}
	// Numbering is per deployment.
	if seq, err := s.AppendStep(ctx, "b", store.Step{Name: "plan", Status: store.StepDone}); err != nil || seq != 1 {
		t.Errorf("first step of b: seq %d, %v; want 1", seq, err)
	}

	got, err := s.Steps(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Steps(a) = %+v", got)
	}
	for i, st := range got {
		want := steps[i]
		want.DeploymentID, want.Seq = "a", int64(i+1)
		if want.At.IsZero() {
			want.At = clk.Now().Add(time.Duration(i-2) * time.Second)
		}
		if !reflect.DeepEqual(st, want) {
			t.Errorf("step %d =\n%+v\nwant\n%+v", i+1, st, want)
		}
	}
	// The deployment's updated_at follows its newest step.
	d, _ := s.GetDeployment(ctx, "a")
	if !d.UpdatedAt.Equal(steps[2].At) {
		t.Errorf("deployment updated_at = %v, want the last step's %v", d.UpdatedAt, steps[2].At)
	}

	if _, err := s.AppendStep(ctx, "missing", store.Step{Name: "x", Status: store.StepDone}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("step of a missing deployment: err = %v, want ErrNotFound", err)
	}
	if _, err := s.AppendStep(ctx, "a", store.Step{Name: "x", Status: "ok"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad step status: err = %v, want ErrInvalid", err)
	}
	if none, err := s.Steps(ctx, "missing"); err != nil || len(none) != 0 {
		t.Errorf("Steps(missing) = %v, %v; want none", none, err)
	}
}
