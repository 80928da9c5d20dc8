package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/keystone-edge/keystone/store"
)

func TestKeyValue(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	const key = "self_update.pending"
	if _, err := s.GetValue(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetValue before set: err = %v, want ErrNotFound", err)
	}
	for _, v := range [][]byte{[]byte(`{"from":"1.0.0","to":"1.1.0"}`), {0, 0xff, 0}, {}} {
		if err := s.SetValue(ctx, key, v); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetValue(ctx, key)
		if err != nil || !bytes.Equal(got, v) || got == nil {
			t.Errorf("GetValue = %q, %v; want %q (non-nil)", got, err, v)
		}
	}
	if err := s.DeleteValue(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetValue(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteValue(ctx, key); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if err := s.SetValue(ctx, "", []byte("x")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty key: err = %v, want ErrInvalid", err)
	}
}
