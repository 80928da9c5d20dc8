package ota

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/keystone-edge/keystone/ota/tufrepo"
	"github.com/keystone-edge/keystone/recipes"
)

// testRepo is a real repository folder served by a real HTTP server.
type testRepo struct {
	dir    string
	srv    *httptest.Server
	anchor string // root.json as installed on the device at enrolment
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	dir := t.TempDir()
	if err := tufrepo.Init(dir, tufrepo.Options{}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	anchor := filepath.Join(t.TempDir(), "root.json")
	data, err := os.ReadFile(tufrepo.RootFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(anchor, data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(tufrepo.ServedDir(dir))))
	t.Cleanup(srv.Close)
	return &testRepo{dir: dir, srv: srv, anchor: anchor}
}

// add stages name@version with the given artifact files (unpacked when
// their name ends in .tar.gz) and returns the recipe bytes.
func (r *testRepo) add(t testing.TB, name, version string, files map[string][]byte) []byte {
	t.Helper()
	src := t.TempDir()
	var b strings.Builder
	b.WriteString("format = 1\n[metadata]\nname = \"" + name + "\"\nversion = \"" + version + "\"\nkind = \"process\"\n")
	var paths []string
	for file, data := range files {
		p := filepath.Join(src, file)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		sum := sha256.Sum256(data)
		b.WriteString("[[artifacts]]\nuri = \"repo:" + tufrepo.ArtifactTarget(name, version, file) + "\"\nsha256 = \"" + hex.EncodeToString(sum[:]) + "\"\n")
		if strings.HasSuffix(file, ".tar.gz") {
			b.WriteString("unpack = true\n")
		} else {
			b.WriteString("executable = true\n")
		}
	}
	b.WriteString("[lifecycle.run]\ncommand = \"./hello\"\n")
	recipe := filepath.Join(src, "hello.recipe.toml")
	if err := os.WriteFile(recipe, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tufrepo.Add(r.dir, recipe, paths, tufrepo.Options{}); err != nil {
		t.Fatalf("Add: %v", err)
	}
	return []byte(b.String())
}

func (r *testRepo) publish(t testing.TB, opts tufrepo.Options) tufrepo.Published {
	t.Helper()
	p, err := tufrepo.Publish(r.dir, opts)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return p
}

func (r *testRepo) client(t testing.TB, cacheDir string) *Repository {
	t.Helper()
	repo, err := NewRepository(RepositoryConfig{RootFile: r.anchor, URL: r.srv.URL, CacheDir: cacheDir, AllowHTTP: true})
	if err != nil {
		t.Fatalf("NewRepository: %v", err)
	}
	return repo
}

func (r *testRepo) served(name string) string { return filepath.Join(tufrepo.ServedDir(r.dir), name) }

// servedTarget is the served file of a target path.
func (r *testRepo) servedTarget(t testing.TB, target string, data []byte) string {
	sum := sha256.Sum256(data)
	dir, base := filepath.Split(target)
	return filepath.Join(tufrepo.ServedDir(r.dir), "targets", dir, hex.EncodeToString(sum[:])+"."+base)
}

// resign re-signs metadata with the repository's own key for role, as an
// attacker holding that key would.
func resign[T metadata.Roles](t testing.TB, r *testRepo, role string, md *metadata.Metadata[T]) []byte {
	t.Helper()
	return resignWith(t, filepath.Join(r.dir, "keys", role+".key"), md)
}

// resignWith re-signs metadata with the private key in keyFile.
func resignWith[T metadata.Roles](t testing.TB, keyFile string, md *metadata.Metadata[T]) []byte {
	t.Helper()
	pemData, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.LoadSigner(priv, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	md.ClearSignatures()
	if _, err := md.Sign(s); err != nil {
		t.Fatal(err)
	}
	data, err := md.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func parseRecipe(t testing.TB, data []byte) *recipes.Recipe {
	t.Helper()
	var r recipes.Recipe
	if err := toml.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	r.Raw = data
	return &r
}

func helloTarGz(t testing.TB) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hello.tar.gz")
	writeTarGz(t, p, []entry{{name: "hello", body: "#!/bin/sh\necho hello\n", mode: 0o755}, {name: "README", body: "hi\n"}})
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRepositoryResolvesPublishedComponent(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t)
	tgz := helloTarGz(t)
	recipe := r.add(t, "com.example.hello", "1.0.0", map[string][]byte{"hello.tar.gz": tgz, "tool": []byte("#!/bin/sh\n")})
	r.publish(t, tufrepo.Options{})

	repo := r.client(t, t.TempDir())
	res, err := repo.Resolve(ctx, "com.example.hello", "1.0.0")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if string(res.Recipe) != string(recipe) {
		t.Errorf("recipe bytes differ from the published ones")
	}
	art, ok := res.Targets["com.example.hello/1.0.0/hello.tar.gz"]
	sum := sha256.Sum256(tgz)
	if !ok || art.SHA256 != hex.EncodeToString(sum[:]) || art.Length != int64(len(tgz)) {
		t.Errorf("artifact target = %+v (listed %v), want sha256 and length of the tarball", art, ok)
	}
	if len(res.Targets) != 3 {
		t.Errorf("targets of the version = %d, want 3 (recipe and two artifacts)", len(res.Targets))
	}
	if _, err := repo.Resolve(ctx, "com.example.hello", "9.9.9"); !errors.Is(err, ErrNoTarget) {
		t.Errorf("Resolve of an unknown version: %v, want ErrNoTarget", err)
	} else {
		wantReason(t, err, ReasonDownloadFailed)
	}

	// The engine then fetches its artifacts through the same repository.
	f := newTestFetcher(t, t.TempDir(), repo, 0)
	if err := f.Fetch(ctx, []*recipes.Recipe{parseRecipe(t, res.Recipe)}, nil); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	vdir := f.VersionDir("com.example.hello", "1.0.0")
	for file, mode := range map[string]os.FileMode{"hello": 0o755, "README": 0o644, "tool": 0o755} {
		fi, err := os.Stat(filepath.Join(vdir, file))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v (mode %v), want mode %v", file, err, fi, mode)
		}
	}
}

func TestRepositoryRejectsAttacks(t *testing.T) {
	ctx := context.Background()
	const name, version = "com.example.hello", "1.0.0"
	cases := []struct {
		name   string
		attack func(t *testing.T, r *testRepo, recipe []byte, artifact []byte, repo *Repository)
		// fetch: the failure shows when fetching artifacts, not in Resolve.
		fetch bool
		want  Reason
	}{
		{"tampered artifact", func(t *testing.T, r *testRepo, _ []byte, artifact []byte, _ *Repository) {
			p := r.servedTarget(t, tufrepo.ArtifactTarget(name, version, "tool"), artifact)
			if err := os.WriteFile(p, []byte(strings.Repeat("X", len(artifact))), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true, ReasonHashMismatch},
		{"tampered recipe", func(t *testing.T, r *testRepo, recipe []byte, _ []byte, _ *Repository) {
			p := r.servedTarget(t, tufrepo.RecipeTarget(name, version), recipe)
			evil := strings.Replace(string(recipe), "./hello", "./evil!", 1)
			if err := os.WriteFile(p, []byte(evil), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, ReasonHashMismatch},
		{"metadata signed by the wrong key", func(t *testing.T, r *testRepo, _ []byte, _ []byte, _ *Repository) {
			other := newTestRepo(t)
			other.publish(t, tufrepo.Options{})
			other.publish(t, tufrepo.Options{})
			data, err := os.ReadFile(other.served("timestamp.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(r.served("timestamp.json"), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, ReasonSignatureInvalid},
		{"expired timestamp", func(t *testing.T, r *testRepo, _ []byte, _ []byte, _ *Repository) {
			r.publish(t, tufrepo.Options{Now: func() time.Time { return time.Now().Add(-48 * time.Hour) }})
		}, false, ReasonMetadataExpired},
		{"replayed older metadata", func(t *testing.T, r *testRepo, _ []byte, _ []byte, repo *Repository) {
			old, err := os.ReadFile(r.served("timestamp.json"))
			if err != nil {
				t.Fatal(err)
			}
			r.publish(t, tufrepo.Options{})
			if _, err := repo.Resolve(ctx, name, version); err != nil { // the device now trusts the newer set
				t.Fatal(err)
			}
			if err := os.WriteFile(r.served("timestamp.json"), old, 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, ReasonRollbackAttack},
		{"timestamp pointing at an older snapshot", func(t *testing.T, r *testRepo, _ []byte, _ []byte, _ *Repository) {
			ts, err := metadata.Timestamp().FromFile(r.served("timestamp.json"))
			if err != nil {
				t.Fatal(err)
			}
			ts.Signed.Version += 10
			ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(1)
			if err := os.WriteFile(r.served("timestamp.json"), resign(t, r, "timestamp", ts), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, ReasonRollbackAttack},
		{"snapshot pointing at older targets", func(t *testing.T, r *testRepo, _ []byte, _ []byte, _ *Repository) {
			ts, err := metadata.Timestamp().FromFile(r.served("timestamp.json"))
			if err != nil {
				t.Fatal(err)
			}
			snapVersion := ts.Signed.Meta["snapshot.json"].Version + 1
			snap := metadata.Snapshot(time.Now().Add(time.Hour))
			snap.Signed.Version = snapVersion
			snap.Signed.Meta["targets.json"] = metadata.MetaFile(1) // the empty targets of Init
			if err := os.WriteFile(r.served(strconv.FormatInt(snapVersion, 10)+".snapshot.json"), resign(t, r, "snapshot", snap), 0o644); err != nil {
				t.Fatal(err)
			}
			ts.Signed.Version++
			ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(snapVersion)
			if err := os.WriteFile(r.served("timestamp.json"), resign(t, r, "timestamp", ts), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, ReasonRollbackAttack},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRepo(t)
			artifact := []byte("#!/bin/sh\necho tool\n")
			recipe := r.add(t, name, version, map[string][]byte{"tool": artifact})
			r.publish(t, tufrepo.Options{})
			repo := r.client(t, t.TempDir())
			// The device has seen the repository once, as in the field.
			if _, err := repo.Resolve(ctx, name, version); err != nil {
				t.Fatalf("first Resolve: %v", err)
			}
			tc.attack(t, r, recipe, artifact, repo)
			res, err := repo.Resolve(ctx, name, version)
			if tc.fetch {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				dataDir := t.TempDir()
				f := newTestFetcher(t, dataDir, repo, 0)
				err = f.Fetch(ctx, []*recipes.Recipe{parseRecipe(t, res.Recipe)}, nil)
				assertNoArtifacts(t, dataDir)
				if _, statErr := os.Stat(f.VersionDir(name, version)); statErr == nil {
					t.Error("version folder placed despite the failure")
				}
			}
			if err == nil {
				t.Fatalf("attack %q accepted", tc.name)
			}
			wantReason(t, err, tc.want)
			t.Logf("rejected: %v", err)
		})
	}
}

// assertNoArtifacts fails if any complete or partial artifact file is in
// dataDir/artifacts.
func assertNoArtifacts(t testing.TB, dataDir string) {
	t.Helper()
	for _, p := range tree(t, filepath.Join(dataDir, "artifacts")) {
		if p != "." && p != ".partial" {
			t.Errorf("artifact cache holds %s after a failed fetch", p)
		}
	}
}

func TestRepositoryFollowsKeyRotation(t *testing.T) {
	ctx := context.Background()
	const name, version = "com.example.hello", "1.0.0"
	r := newTestRepo(t)
	r.add(t, name, version, map[string][]byte{"tool": []byte("#!/bin/sh\n")})
	r.publish(t, tufrepo.Options{})
	repo := r.client(t, t.TempDir())
	if _, err := repo.Resolve(ctx, name, version); err != nil {
		t.Fatalf("Resolve before rotation: %v", err)
	}
	for i, role := range []string{"timestamp", "root", "targets", "snapshot", "root"} {
		rot, err := tufrepo.RotateKey(r.dir, role, tufrepo.Options{})
		if err != nil {
			t.Fatalf("RotateKey %s: %v", role, err)
		}
		if rot.RootVersion != int64(i+2) || len(rot.OldKeyIDs) != 1 || rot.OldKeyIDs[0] == rot.NewKeyID {
			t.Fatalf("rotation %d = %+v", i, rot)
		}
		if _, err := repo.Resolve(ctx, name, version); err != nil {
			t.Fatalf("Resolve after rotating the %s key: %v", role, err)
		}
	}
	// A device enrolled with the first root and an empty cache walks the chain.
	if _, err := r.client(t, t.TempDir()).Resolve(ctx, name, version); err != nil {
		t.Fatalf("fresh device after rotations: %v", err)
	}
	// Metadata signed with a retired key is refused.
	retired, err := filepath.Glob(filepath.Join(r.dir, "keys", "retired", "timestamp-*.key"))
	if err != nil || len(retired) != 1 {
		t.Fatalf("retired timestamp keys = %v (%v), want one", retired, err)
	}
	ts, err := metadata.Timestamp().FromFile(r.served("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version++
	if err := os.WriteFile(r.served("timestamp.json"), resignWith(t, retired[0], ts), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = repo.Resolve(ctx, name, version)
	wantReason(t, err, ReasonSignatureInvalid)
}
