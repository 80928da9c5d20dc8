package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/store"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestArtifactIndexLRU(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, _ := openTemp(t, store.WithClock(clk.Now))
	base := clk.Now()
	a, b, c := digest("a"), digest("b"), digest("c")

	put := func(sha string, size int64, used time.Time) {
		t.Helper()
		if err := s.PutArtifact(ctx, store.Artifact{SHA256: sha, Size: size, LastUsed: used}); err != nil {
			t.Fatal(err)
		}
	}
	put(a, 100, base.Add(3*time.Hour))
	put(b, 200, base.Add(1*time.Hour))
	put(c, 300, base.Add(2*time.Hour))

	order := func() []string {
		t.Helper()
		list, err := s.ListArtifacts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range list {
			out = append(out, x.SHA256[:4])
		}
		return out
	}
	if got, want := order(), []string{b[:4], c[:4], a[:4]}; !equal(got, want) {
		t.Errorf("ListArtifacts order = %v, want %v (least recently used first)", got, want)
	}

	// Using b moves it to the end.
	if err := s.TouchArtifact(ctx, b, base.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, want := order(), []string{c[:4], a[:4], b[:4]}; !equal(got, want) {
		t.Errorf("after touch = %v, want %v", got, want)
	}

	// A second Put keeps the creation time.
	put(a, 111, base.Add(6*time.Hour))
	list, _ := s.ListArtifacts(ctx)
	last := list[len(list)-1]
	if last.SHA256 != a || last.Size != 111 || !last.CreatedAt.Equal(base.Add(3*time.Hour)) || !last.LastUsed.Equal(base.Add(6*time.Hour)) {
		t.Errorf("re-put artifact = %+v", last)
	}

	if err := s.DeleteArtifact(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteArtifact(ctx, c); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if got := order(); len(got) != 2 {
		t.Errorf("after delete = %v", got)
	}
	if err := s.TouchArtifact(ctx, c, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("touch of a deleted artifact: err = %v, want ErrNotFound", err)
	}
	for _, bad := range []store.Artifact{{SHA256: "abc"}, {SHA256: digest("x"), Size: -1},
		{SHA256: "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"}} {
		if err := s.PutArtifact(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutArtifact(%+v): err = %v, want ErrInvalid", bad, err)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
