package tufrepo

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestRotateKeyWritesNewRootAndRetiresTheOldKey(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(keyPath(dir, RoleSnapshot))
	if err != nil {
		t.Fatal(err)
	}
	rot, err := RotateKey(dir, RoleSnapshot, Options{})
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	after, err := os.ReadFile(keyPath(dir, RoleSnapshot))
	if err != nil || string(after) == string(before) {
		t.Fatalf("snapshot key not replaced (%v)", err)
	}
	fi, _ := os.Stat(keyPath(dir, RoleSnapshot))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new key mode %v, want 0600", fi.Mode().Perm())
	}
	retired, _ := filepath.Glob(filepath.Join(keysDir(dir), "retired", "snapshot-*.key"))
	if len(retired) != 1 {
		t.Errorf("retired keys = %v, want the old snapshot key", retired)
	} else if data, _ := os.ReadFile(retired[0]); string(data) != string(before) {
		t.Error("retired file is not the old key")
	}
	if left, _ := filepath.Glob(filepath.Join(keysDir(dir), "*.next")); len(left) != 0 {
		t.Errorf("leftover %v", left)
	}
	root, err := metadata.Root().FromFile(filepath.Join(ServedDir(dir), "2.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	ids := root.Signed.Roles[RoleSnapshot].KeyIDs
	if !slices.Equal(ids, []string{rot.NewKeyID}) || slices.Contains(ids, rot.OldKeyIDs[0]) {
		t.Errorf("root v2 snapshot keys = %v, want only %s", ids, rot.NewKeyID)
	}
	if _, ok := root.Signed.Keys[rot.OldKeyIDs[0]]; ok {
		t.Error("old key still listed in root")
	}
	// Snapshot and timestamp were re-published under the new key.
	pub, err := loadPublished(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.VerifyDelegate(RoleSnapshot, pub.snapshot); err != nil {
		t.Errorf("published snapshot not signed by the new key: %v", err)
	}
	if _, err := RotateKey(dir, "nobody", Options{}); err == nil {
		t.Error("RotateKey accepted an unknown role")
	}
}
