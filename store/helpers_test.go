package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/internal/fakeclock"
	"github.com/keystone-edge/keystone/store"
)

// newFakeClock returns the store's clock in tests: it moves only when told.
func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC))
}

// openTemp opens a store on a fresh file in t.TempDir and closes it when
// the test ends.
func openTemp(t testing.TB, opts ...store.Option) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keystone.db")
	s, err := store.Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

// reopen closes s and opens the same file again; the new store is closed
// when the test ends.
func reopen(t *testing.T, s *store.Store, opts ...store.Option) *store.Store {
	t.Helper()
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2, err := store.Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("reopen %s: %v", path, err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}
