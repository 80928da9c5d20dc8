package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/keystone-edge/keystone/store"
)

func TestPluginState(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	const name = "com.example.pos"
	if _, err := s.LoadPluginState(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("before first save: err = %v, want ErrNotFound", err)
	}
	for _, state := range []string{`{"last_offset":1234}`, `{"last_offset":1301,"nested":{"a":[1,2]}}`} {
		if err := s.SavePluginState(ctx, name, json.RawMessage(state)); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadPluginState(ctx, name)
		if err != nil || string(got) != state {
			t.Errorf("LoadPluginState = %s, %v; want %s", got, err, state)
		}
	}
	if err := s.SavePluginState(ctx, name, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadPluginState(ctx, name); string(got) != "null" {
		t.Errorf("nil state stored as %s, want null", got)
	}
	if err := s.SavePluginState(ctx, name, json.RawMessage(`{`)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad JSON: err = %v, want ErrInvalid", err)
	}
	if err := s.SavePluginState(ctx, "", json.RawMessage(`{}`)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty name: err = %v, want ErrInvalid", err)
	}
}
