package deploy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/ota"
	"github.com/keystone-edge/keystone/ota/tufrepo"
	"github.com/keystone-edge/keystone/supervisor/deploy"
)

// TestComponentFromTheRepository deploys a component the manifest names
// without a recipe: its recipe and artifact come from a real TUF
// repository served over HTTP.
func TestComponentFromTheRepository(t *testing.T) {
	dir := t.TempDir()
	if err := tufrepo.Init(dir, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(tufrepo.ServedDir(dir))))
	t.Cleanup(srv.Close)
	r := newRig(t, func(o *rigOptions) {
		o.repo = func(cache string) *ota.Repository {
			repo, err := ota.NewRepository(ota.RepositoryConfig{RootFile: tufrepo.RootFile(dir), URL: srv.URL, CacheDir: cache, AllowHTTP: true})
			if err != nil {
				t.Fatal(err)
			}
			return repo
		}
	})

	src := t.TempDir()
	script := []byte("#!/bin/sh\nexec sleep 600\n")
	art := filepath.Join(src, "run.sh")
	if err := os.WriteFile(art, script, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	remote := spec{name: "com.test.remote", version: "1.2.0", command: "./run.sh",
		artifact: &artifact{uri: "repo:" + tufrepo.ArtifactTarget("com.test.remote", "1.2.0", "run.sh"), sha256: hex.EncodeToString(sum[:])}}
	recipe := filepath.Join(src, "remote.recipe.toml")
	if err := os.WriteFile(recipe, []byte(r.recipe(remote)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tufrepo.Add(dir, recipe, []string{art}, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tufrepo.Publish(dir, tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}

	local := spec{name: "com.test.local", version: "1.0.0", deps: []string{"com.test.remote"}}
	req := r.request(manifest{comps: []spec{local}})
	req.Manifest = append(req.Manifest, []byte("[[components]]\nname = \"com.test.remote\"\nversion = \"1.2.0\"\n")...)
	acc, err := r.eng.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, r.wait(acc.ID))
	r.running(map[string]string{"com.test.local": "1.0.0", "com.test.remote": "1.2.0"})

	// A version the repository does not sign is refused before anything is queued.
	req = r.request(manifest{comps: []spec{local}})
	req.Manifest = append(req.Manifest, []byte("[[components]]\nname = \"com.test.remote\"\nversion = \"9.9.9\"\n")...)
	_, err = r.eng.Submit(context.Background(), req)
	var ve *deploy.ValidationError
	if !errors.As(err, &ve) || ve.Code() != "DOWNLOAD_FAILED" || !strings.Contains(ve.Error(), "com.test.remote@9.9.9") {
		t.Fatalf("unknown repository version: %v", err)
	}
}
