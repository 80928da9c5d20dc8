package ota

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keystone-edge/keystone/ota/tufrepo"
	"github.com/keystone-edge/keystone/recipes"
)

func TestNewWiresCacheDownloaderAndRepository(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	tool := []byte("#!/bin/sh\necho tool\n")
	recipe := r.add(t, "com.example.hello", "2.0.0", map[string][]byte{"tool": tool})
	r.publish(t, tufrepo.Options{})
	dataDir := t.TempDir()
	st := openStore(t, dataDir)

	if _, _, err := New(ctx, Config{DataDir: dataDir, Index: st, TUFRoot: r.anchor, RepositoryURL: r.srv.URL}); !errors.Is(err, ErrSchemeNotAllowed) {
		t.Fatalf("New with an http:// repository and allow_http off: %v, want ErrSchemeNotAllowed", err)
	}
	f, repo, err := New(ctx, Config{DataDir: dataDir, Index: st, AllowHTTP: true, TUFRoot: r.anchor, RepositoryURL: r.srv.URL})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	res, err := repo.Resolve(ctx, "com.example.hello", "2.0.0")
	if err != nil || string(res.Recipe) != string(recipe) {
		t.Fatalf("Resolve: %v", err)
	}
	if err := f.Fetch(ctx, []*recipes.Recipe{parseRecipe(t, res.Recipe)}, nil); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	for _, p := range []string{"artifacts/" + shaHex(tool), "components/com.example.hello/2.0.0/tool", "tuf/metadata/timestamp.json"} {
		if _, err := os.Stat(filepath.Join(dataDir, p)); err != nil {
			t.Errorf("data_dir/%s: %v", p, err)
		}
	}
}
