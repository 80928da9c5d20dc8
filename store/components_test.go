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

func TestComponentsRoundTrip(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))

	since := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.FixedZone("EET", 2*3600))
	hello := store.Component{
		Name: "com.example.hello", Version: "1.2.0", Kind: "process", State: "RUNNING",
		Config: json.RawMessage(`{"interval_seconds":10}`), Since: since, Restarts: 3,
		LastError: "exit status 1", PreviousVersion: "1.1.0",
	}
	if err := s.UpsertComponent(ctx, hello); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetComponent(ctx, hello.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := hello
	want.Since = since.UTC()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetComponent =\n%+v\nwant\n%+v", got, want)
	}
	if got.Since.Location() != time.UTC {
		t.Errorf("Since comes back in %v, want UTC", got.Since.Location())
	}

	// Upsert replaces every field; zero Since means now.
	hello2 := store.Component{Name: hello.Name, Version: "1.3.0", Kind: "process", State: "STARTING"}
	if err := s.UpsertComponent(ctx, hello2); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetComponent(ctx, hello.Name)
	if err != nil {
		t.Fatal(err)
	}
	want = hello2
	want.Since = clk.Now()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after replace =\n%+v\nwant\n%+v", got, want)
	}

	if err := s.UpsertComponent(ctx, store.Component{Name: "a.plugin", Version: "0.1.0", Kind: "plugin", State: "RUNNING"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListComponents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a.plugin" || list[1].Name != hello.Name {
		t.Errorf("ListComponents = %+v, want a.plugin then %s", list, hello.Name)
	}

	if _, err := s.GetComponent(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetComponent(missing): err = %v, want ErrNotFound", err)
	}
	if err := s.UpsertComponent(ctx, store.Component{Name: ""}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty name: err = %v, want ErrInvalid", err)
	}
	if err := s.UpsertComponent(ctx, store.Component{Name: "x.y", Config: json.RawMessage(`{bad`)}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad config JSON: err = %v, want ErrInvalid", err)
	}
}

func TestDeleteComponentTakesPluginStateNotProcess(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	const name = "com.example.pos"
	if err := s.UpsertComponent(ctx, store.Component{Name: name, Version: "1.0.0", Kind: "plugin", State: "RUNNING"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePluginState(ctx, name, json.RawMessage(`{"last_offset":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordProcess(ctx, store.Process{Component: name, PID: 4242, StartTicks: 99, PGID: 4242}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteComponent(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetComponent(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("component still there: %v", err)
	}
	if _, err := s.LoadPluginState(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("plugin state survived DeleteComponent: %v", err)
	}
	procs, err := s.ListProcesses(ctx)
	if err != nil || len(procs) != 1 {
		t.Errorf("process record must outlive the component row: %+v, %v", procs, err)
	}
	if err := s.DeleteComponent(ctx, name); err != nil {
		t.Errorf("second delete: %v", err)
	}
}
