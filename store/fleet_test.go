package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

func openFleet(t *testing.T, path string, opts ...store.Option) *store.Fleet {
	t.Helper()
	f, err := store.OpenFleet(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("OpenFleet(%s): %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A rollout's record survives closing and reopening the file, and only
// open rollouts are listed as open.
func TestFleetRolloutsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "fleet.db")
	f := openFleet(t, path, store.WithClock(clock.Now))
	if err := f.CreateRollout(ctx, store.FleetRollout{ID: "r1", Phase: "NEW", Open: true, State: json.RawMessage(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := f.CreateRollout(ctx, store.FleetRollout{ID: "r1", Phase: "NEW", Open: true, State: json.RawMessage(`{}`)}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create of r1: %v, want ErrExists", err)
	}
	clock.Advance(time.Second)
	if err := f.CreateRollout(ctx, store.FleetRollout{ID: "r2", Phase: "NEW", Open: true, State: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if err := f.SaveRollout(ctx, "r2", "SUCCEEDED", false, json.RawMessage(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := f.SaveRollout(ctx, "nope", "NEW", true, json.RawMessage(`{}`)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("save of an unknown rollout: %v, want ErrNotFound", err)
	}
	if err := f.SaveRollout(ctx, "r1", "NEW", true, json.RawMessage(`{`)); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("save of bad JSON: %v, want ErrInvalid", err)
	}
	f.Close()

	f = openFleet(t, path, store.WithClock(clock.Now))
	open, err := f.Rollouts(ctx, true)
	if err != nil || len(open) != 1 || open[0].ID != "r1" || string(open[0].State) != `{"n":1}` {
		t.Fatalf("open rollouts after reopen: %+v, %v", open, err)
	}
	all, err := f.Rollouts(ctx, false)
	if err != nil || len(all) != 2 || all[1].ID != "r2" || all[1].Phase != "SUCCEEDED" || all[1].Open {
		t.Fatalf("all rollouts: %+v, %v", all, err)
	}
	if !all[1].UpdatedAt.Equal(all[1].CreatedAt.Add(time.Second)) {
		t.Errorf("r2 created %v, updated %v; want updated a second later", all[1].CreatedAt, all[1].UpdatedAt)
	}
	if _, err := f.Rollout(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Rollout(nope): %v, want ErrNotFound", err)
	}
}

// A status delivered twice is recorded once, and statuses are found by
// their rollout's job id prefix.
func TestFleetStatusesAreDeduplicated(t *testing.T) {
	ctx := context.Background()
	f := openFleet(t, filepath.Join(t.TempDir(), "fleet.db"))
	st := store.FleetStatus{DeviceID: "pos-1", Seq: 7, JobID: "r1-pos-1", Status: "SUCCEEDED", Body: json.RawMessage(`{"seq":7}`)}
	for i, want := range []bool{true, false} {
		isNew, err := f.RecordStatus(ctx, st)
		if err != nil || isNew != want {
			t.Fatalf("delivery %d: new %v, %v; want %v", i+1, isNew, err, want)
		}
	}
	other := store.FleetStatus{DeviceID: "pos-2", Seq: 7, JobID: "r2-pos-2", Status: "FAILED", Body: json.RawMessage(`{}`)}
	if isNew, err := f.RecordStatus(ctx, other); err != nil || !isNew {
		t.Fatalf("same seq from another device: new %v, %v; want new", isNew, err)
	}
	got, err := f.StatusesOfJobs(ctx, "r1-")
	if err != nil || len(got) != 1 || got[0].DeviceID != "pos-1" || got[0].Seq != 7 || string(got[0].Body) != `{"seq":7}` {
		t.Fatalf("statuses of r1: %+v, %v", got, err)
	}
	if _, err := f.RecordStatus(ctx, store.FleetStatus{DeviceID: "pos-1", Seq: 8, Body: json.RawMessage(`x`)}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad JSON body: %v, want ErrInvalid", err)
	}
}

func TestFleetDeviceStatesKeepTheLatest(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	f := openFleet(t, filepath.Join(t.TempDir(), "fleet.db"), store.WithClock(clock.Now))
	for _, d := range []store.FleetDevice{
		{ID: "b", Online: true, Body: json.RawMessage(`{"v":1}`)},
		{ID: "a", Online: true, Body: json.RawMessage(`{"v":1}`)},
		{ID: "b", Online: false, Body: json.RawMessage(`{"v":2}`)},
	} {
		clock.Advance(time.Second)
		if err := f.SaveDeviceState(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.DeviceStates(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("device states: %+v, %v", got, err)
	}
	if got[0].ID != "a" || got[1].ID != "b" || got[1].Online || string(got[1].Body) != `{"v":2}` || !got[1].LastSeen.Equal(clock.Now().UTC().Truncate(time.Millisecond)) {
		t.Errorf("device states %+v; want a, then b offline with the second body seen now", got)
	}
}

// Control requests are taken once, in order, and only for their rollout.
func TestFleetControlsAreTakenOnce(t *testing.T) {
	ctx := context.Background()
	f := openFleet(t, filepath.Join(t.TempDir(), "fleet.db"))
	for _, id := range []string{"r1", "r2"} {
		if err := f.CreateRollout(ctx, store.FleetRollout{ID: id, Phase: "RUNNING", Open: true, State: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.RequestControl(ctx, "missing", "pause", "", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("control for an unknown rollout: %v, want ErrNotFound", err)
	}
	for _, a := range []string{"pause", "resume"} {
		if err := f.RequestControl(ctx, "r1", a, "by test", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.RequestControl(ctx, "r2", "cancel", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, err := f.TakeControls(ctx, "r1")
	if err != nil || len(got) != 2 || got[0].Action != "pause" || got[1].Action != "resume" || got[0].Reason != "by test" {
		t.Fatalf("controls of r1: %+v, %v", got, err)
	}
	if again, err := f.TakeControls(ctx, "r1"); err != nil || len(again) != 0 {
		t.Fatalf("controls of r1 taken again: %+v, %v; want none", again, err)
	}
	if got, err := f.TakeControls(ctx, "r2"); err != nil || len(got) != 1 || got[0].Action != "cancel" {
		t.Fatalf("controls of r2: %+v, %v", got, err)
	}
}

// Two drivers cannot hold one rollout: the second claim fails until the
// first lease runs out or is released.
func TestFleetClaimIsExclusive(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	f := openFleet(t, filepath.Join(t.TempDir(), "fleet.db"), store.WithClock(clock.Now))
	if err := f.CreateRollout(ctx, store.FleetRollout{ID: "r1", Phase: "NEW", Open: true, State: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	claim := func(owner string) bool {
		t.Helper()
		ok, err := f.ClaimRollout(ctx, "r1", owner, clock.Now().Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !claim("a") || !claim("a") {
		t.Fatal("a could not claim, or renew, a free rollout")
	}
	if claim("b") {
		t.Fatal("b claimed a rollout a holds")
	}
	clock.Advance(11 * time.Second)
	if !claim("b") {
		t.Fatal("b could not claim after a's lease ran out")
	}
	if err := f.ReleaseRollout(ctx, "r1", "b"); err != nil {
		t.Fatal(err)
	}
	if !claim("a") {
		t.Fatal("a could not claim after b released")
	}
}

// A device's last successful deployment replaces the one before and
// survives reopening the file.
func TestFleetDeploymentsKeepTheLastPerDevice(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	f := openFleet(t, path)
	for _, d := range []store.FleetDeployment{
		{DeviceID: "pos-1", RolloutID: "r1", JobID: "r1-pos-1", Manifest: "v1"},
		{DeviceID: "pos-2", RolloutID: "r1", JobID: "r1-pos-2", Manifest: "v1"},
		{DeviceID: "pos-1", RolloutID: "r2", JobID: "r2-pos-1", Manifest: "v2"},
	} {
		if err := f.RecordDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.RecordDeployment(ctx, store.FleetDeployment{DeviceID: "pos-3", JobID: "j"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("deployment without a manifest: %v; want ErrInvalid", err)
	}
	f.Close()
	f = openFleet(t, path)
	got, err := f.Deployments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["pos-1"].Manifest != "v2" || got["pos-1"].JobID != "r2-pos-1" || got["pos-2"].Manifest != "v1" {
		t.Errorf("deployments %+v; want pos-1 at v2 (r2), pos-2 at v1", got)
	}
}
