package tufrepo

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/pelletier/go-toml/v2"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/keystone-edge/keystone/recipes"
)

// Errors callers may branch on.
var (
	// ErrExists: Init found a repository already there.
	ErrExists = errors.New("tufrepo: repository already exists")
	// ErrImmutable: Add would change the bytes of a target already listed.
	ErrImmutable = errors.New("tufrepo: target already listed with other content; component versions are immutable")
	// ErrArtifactMismatch: the recipe and the artifact files given to Add disagree.
	ErrArtifactMismatch = errors.New("tufrepo: recipe and artifacts disagree")
)

// Init creates a new repository in dir: fresh ed25519 keys for the four
// roles in dir/keys (0600), root metadata trusting them, empty targets and
// a first snapshot and timestamp, so that ServedDir(dir) is servable at
// once. It refuses a dir that already holds keys or metadata.
func Init(dir string, opts Options) error {
	if _, err := os.Stat(keysDir(dir)); err == nil {
		return fmt.Errorf("init %s: %w", dir, ErrExists)
	}
	if _, err := os.Stat(RootFile(dir)); err == nil {
		return fmt.Errorf("init %s: %w", dir, ErrExists)
	}
	if err := os.MkdirAll(filepath.Join(ServedDir(dir), "targets"), 0o755); err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	root := metadata.Root(opts.expiry(RoleRoot))
	keys := map[string]ed25519.PrivateKey{}
	for _, role := range Roles {
		priv, err := newKey(dir, role)
		if err != nil {
			return fmt.Errorf("init %s: %w", dir, err)
		}
		keys[role] = priv
		k, err := tufKey(priv)
		if err != nil {
			return fmt.Errorf("init %s: %w", dir, err)
		}
		if err := root.Signed.AddKey(k, role); err != nil {
			return fmt.Errorf("init %s: %w", dir, err)
		}
	}
	if err := sign(root, keys[RoleRoot]); err != nil {
		return fmt.Errorf("init %s: sign root: %w", dir, err)
	}
	if err := writeRoot(dir, root); err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	targets := metadata.Targets(opts.expiry(RoleTargets))
	if err := saveStaged(dir, targets); err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	if _, err := publish(dir, opts, true); err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	return nil
}

// Added is what Add put into the staged targets.
type Added struct {
	Name, Version string
	Targets       []string // target paths, the recipe's first
}

// Add stages a component version: the recipe at recipePath becomes target
// RecipeTarget(name, version) and each artifact file becomes
// ArtifactTarget(name, version, base name), copied into the served targets
// folder under its hash-prefixed name. Every repo: artifact of the recipe
// must be among them (or already listed) with the sha256 the recipe states,
// and every given artifact must be referenced by the recipe. Nothing is
// visible to devices before Publish.
func Add(dir, recipePath string, artifacts []string, opts Options) (Added, error) {
	raw, err := os.ReadFile(recipePath)
	if err != nil {
		return Added{}, fmt.Errorf("add: read recipe: %w", err)
	}
	var r recipes.Recipe
	if err := toml.Unmarshal(raw, &r); err != nil {
		return Added{}, fmt.Errorf("add %s: parse recipe: %w", recipePath, err)
	}
	name, version := r.Metadata.Name, r.Metadata.Version
	if err := checkNameVersion(name, version); err != nil {
		return Added{}, fmt.Errorf("add %s: %w", recipePath, err)
	}
	staged, err := loadStaged(dir)
	if err != nil {
		return Added{}, fmt.Errorf("add %s@%s: %w", name, version, err)
	}
	pub, err := loadPublished(dir)
	if err != nil {
		return Added{}, fmt.Errorf("add %s@%s: %w", name, version, err)
	}

	type file struct {
		target string
		data   []byte
	}
	files := []file{{RecipeTarget(name, version), raw}}
	given := map[string]bool{}
	for _, a := range artifacts {
		data, err := os.ReadFile(a)
		if err != nil {
			return Added{}, fmt.Errorf("add %s@%s: read artifact: %w", name, version, err)
		}
		t := ArtifactTarget(name, version, filepath.Base(a))
		if given[t] {
			return Added{}, fmt.Errorf("add %s@%s: two artifacts named %s", name, version, filepath.Base(a))
		}
		given[t] = true
		files = append(files, file{t, data})
	}
	infos := map[string]*metadata.TargetFiles{}
	for _, f := range files {
		tf, err := metadata.TargetFile().FromBytes(f.target, f.data, "sha256")
		if err != nil {
			return Added{}, fmt.Errorf("add %s@%s: hash %s: %w", name, version, f.target, err)
		}
		if old, ok := staged.Signed.Targets[f.target]; ok && !old.Equal(*tf) {
			return Added{}, fmt.Errorf("add %s@%s: %s: %w", name, version, f.target, ErrImmutable)
		}
		infos[f.target] = tf
	}

	// The recipe's repo: artifacts must match what is listed, and every
	// given artifact must be used.
	used := map[string]bool{}
	for _, a := range r.Artifacts {
		target, ok := strings.CutPrefix(a.URI, "repo:")
		if !ok {
			continue
		}
		used[target] = true
		tf := infos[target]
		if tf == nil {
			tf = staged.Signed.Targets[target]
		}
		if tf == nil {
			return Added{}, fmt.Errorf("add %s@%s: %w: %s is neither given nor already in the repository", name, version, ErrArtifactMismatch, a.URI)
		}
		if got := hex.EncodeToString(tf.Hashes["sha256"]); !strings.EqualFold(got, a.SHA256) {
			return Added{}, fmt.Errorf("add %s@%s: %w: %s has sha256 %s, the recipe says %s", name, version, ErrArtifactMismatch, a.URI, got, a.SHA256)
		}
	}
	for t := range given {
		if !used[t] {
			return Added{}, fmt.Errorf("add %s@%s: %w: artifact %s is not referenced by the recipe as repo:%s", name, version, ErrArtifactMismatch, path.Base(t), t)
		}
	}

	added := Added{Name: name, Version: version}
	for _, f := range files {
		if err := writeTarget(dir, f.target, f.data); err != nil {
			return Added{}, fmt.Errorf("add %s@%s: %w", name, version, err)
		}
		staged.Signed.Targets[f.target] = infos[f.target]
		added.Targets = append(added.Targets, f.target)
	}
	if staged.Signed.Version <= pub.targets.Signed.Version {
		staged.Signed.Version = pub.targets.Signed.Version + 1
	}
	if err := saveStaged(dir, staged); err != nil {
		return Added{}, fmt.Errorf("add %s@%s: %w", name, version, err)
	}
	return added, nil
}

func checkNameVersion(name, version string) error {
	if name == "" || version == "" {
		return errors.New("recipe has no metadata.name or metadata.version")
	}
	if !filepath.IsLocal(name) || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("metadata.name %q is not a plain name", name)
	}
	if name == ReleaseName {
		return fmt.Errorf("metadata.name %q is reserved for agent releases (repo add --agent-release)", name)
	}
	if err := CheckVersion(version); err != nil {
		return fmt.Errorf("metadata.version: %w", err)
	}
	return nil
}

// CheckVersion reports whether version may name a component version or an
// agent release: a strict semantic version such as 1.4.0 or 2.0.0-rc.1,
// without a leading "v".
func CheckVersion(version string) error {
	if _, err := semver.StrictNewVersion(version); err != nil {
		return fmt.Errorf("version %q is not a semantic version such as 1.4.0: %w", version, err)
	}
	return nil
}

// Published names the metadata versions a Publish wrote.
type Published struct {
	Root, Targets, Snapshot, Timestamp int64
}

// Publish makes staged changes visible: it signs the staged targets when
// they changed (or when less than half of the published targets' lifetime
// is left) and always signs a new snapshot and timestamp with fresh
// expiries. Run it at least every TimestampExpiry, even with no change.
func Publish(dir string, opts Options) (Published, error) {
	p, err := publish(dir, opts, false)
	if err != nil {
		return Published{}, fmt.Errorf("publish %s: %w", dir, err)
	}
	return p, nil
}

// publish writes targets (when changed or forced), then snapshot, then
// timestamp, each only after the one it points to exists.
func publish(dir string, opts Options, forceTargets bool) (Published, error) {
	root, err := loadRoot(dir)
	if err != nil {
		return Published{}, err
	}
	staged, err := loadStaged(dir)
	if err != nil {
		return Published{}, err
	}
	pub, err := loadPublished(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Published{}, err
	}
	var snapVersion, tsVersion, targetsVersion int64
	if pub != nil {
		snapVersion, tsVersion = pub.snapshot.Signed.Version, pub.timestamp.Signed.Version
		targetsVersion = pub.targets.Signed.Version
		if !forceTargets && staged.Signed.Version <= targetsVersion &&
			pub.targets.Signed.Expires.Sub(opts.now()) < opts.lifetime(RoleTargets)/2 {
			forceTargets = true
		}
		if forceTargets && staged.Signed.Version <= targetsVersion {
			staged.Signed.Version = targetsVersion + 1
		}
	}
	targetsData := []byte(nil)
	if pub == nil || forceTargets || staged.Signed.Version > targetsVersion {
		key, err := loadKey(dir, RoleTargets)
		if err != nil {
			return Published{}, err
		}
		staged.Signed.Expires = opts.expiry(RoleTargets)
		if err := sign(staged, key); err != nil {
			return Published{}, fmt.Errorf("sign targets: %w", err)
		}
		if targetsData, err = staged.ToBytes(true); err != nil {
			return Published{}, fmt.Errorf("encode targets: %w", err)
		}
		name := strconv.FormatInt(staged.Signed.Version, 10) + ".targets.json"
		if err := writeAtomic(filepath.Join(ServedDir(dir), name), targetsData, 0o644); err != nil {
			return Published{}, fmt.Errorf("write targets: %w", err)
		}
		if err := saveStaged(dir, staged); err != nil {
			return Published{}, err
		}
		targetsVersion = staged.Signed.Version
	} else {
		name := strconv.FormatInt(targetsVersion, 10) + ".targets.json"
		if targetsData, err = os.ReadFile(filepath.Join(ServedDir(dir), name)); err != nil {
			return Published{}, fmt.Errorf("read targets: %w", err)
		}
	}

	snapKey, err := loadKey(dir, RoleSnapshot)
	if err != nil {
		return Published{}, err
	}
	snap := metadata.Snapshot(opts.expiry(RoleSnapshot))
	snap.Signed.Version = snapVersion + 1
	snap.Signed.Meta["targets.json"] = metaFile(targetsVersion, targetsData)
	if err := sign(snap, snapKey); err != nil {
		return Published{}, fmt.Errorf("sign snapshot: %w", err)
	}
	snapData, err := snap.ToBytes(true)
	if err != nil {
		return Published{}, fmt.Errorf("encode snapshot: %w", err)
	}
	snapName := strconv.FormatInt(snap.Signed.Version, 10) + ".snapshot.json"
	if err := writeAtomic(filepath.Join(ServedDir(dir), snapName), snapData, 0o644); err != nil {
		return Published{}, fmt.Errorf("write snapshot: %w", err)
	}

	tsKey, err := loadKey(dir, RoleTimestamp)
	if err != nil {
		return Published{}, err
	}
	ts := metadata.Timestamp(opts.expiry(RoleTimestamp))
	ts.Signed.Version = tsVersion + 1
	ts.Signed.Meta["snapshot.json"] = metaFile(snap.Signed.Version, snapData)
	if err := sign(ts, tsKey); err != nil {
		return Published{}, fmt.Errorf("sign timestamp: %w", err)
	}
	tsData, err := ts.ToBytes(true)
	if err != nil {
		return Published{}, fmt.Errorf("encode timestamp: %w", err)
	}
	if err := writeAtomic(filepath.Join(ServedDir(dir), "timestamp.json"), tsData, 0o644); err != nil {
		return Published{}, fmt.Errorf("write timestamp: %w", err)
	}
	return Published{Root: root.Signed.Version, Targets: targetsVersion, Snapshot: snap.Signed.Version, Timestamp: ts.Signed.Version}, nil
}

func metaFile(version int64, data []byte) *metadata.MetaFiles {
	m := metadata.MetaFile(version)
	sum := sha256.Sum256(data)
	m.Length = int64(len(data))
	m.Hashes["sha256"] = sum[:]
	return m
}

// published is the metadata a client currently sees.
type published struct {
	timestamp *metadata.Metadata[metadata.TimestampType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	targets   *metadata.Metadata[metadata.TargetsType]
}

func loadPublished(dir string) (*published, error) {
	ts, err := metadata.Timestamp().FromFile(filepath.Join(ServedDir(dir), "timestamp.json"))
	if err != nil {
		return nil, fmt.Errorf("read timestamp: %w", err)
	}
	snapMeta := ts.Signed.Meta["snapshot.json"]
	if snapMeta == nil {
		return nil, errors.New("timestamp lists no snapshot")
	}
	snap, err := metadata.Snapshot().FromFile(filepath.Join(ServedDir(dir), strconv.FormatInt(snapMeta.Version, 10)+".snapshot.json"))
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	tMeta := snap.Signed.Meta["targets.json"]
	if tMeta == nil {
		return nil, errors.New("snapshot lists no targets")
	}
	targets, err := metadata.Targets().FromFile(filepath.Join(ServedDir(dir), strconv.FormatInt(tMeta.Version, 10)+".targets.json"))
	if err != nil {
		return nil, fmt.Errorf("read targets: %w", err)
	}
	return &published{timestamp: ts, snapshot: snap, targets: targets}, nil
}

func loadRoot(dir string) (*metadata.Metadata[metadata.RootType], error) {
	root, err := metadata.Root().FromFile(RootFile(dir))
	if err != nil {
		return nil, fmt.Errorf("read root: %w", err)
	}
	return root, nil
}

// writeRoot writes <version>.root.json, then root.json.
func writeRoot(dir string, root *metadata.Metadata[metadata.RootType]) error {
	data, err := root.ToBytes(true)
	if err != nil {
		return fmt.Errorf("encode root: %w", err)
	}
	name := strconv.FormatInt(root.Signed.Version, 10) + ".root.json"
	if err := writeAtomic(filepath.Join(ServedDir(dir), name), data, 0o644); err != nil {
		return fmt.Errorf("write root: %w", err)
	}
	if err := writeAtomic(RootFile(dir), data, 0o644); err != nil {
		return fmt.Errorf("write root: %w", err)
	}
	return nil
}

func loadStaged(dir string) (*metadata.Metadata[metadata.TargetsType], error) {
	t, err := metadata.Targets().FromFile(stagedTargets(dir))
	if err != nil {
		return nil, fmt.Errorf("read staged targets (is %s a repository? see repo init): %w", dir, err)
	}
	return t, nil
}

func saveStaged(dir string, t *metadata.Metadata[metadata.TargetsType]) error {
	data, err := t.ToBytes(true)
	if err != nil {
		return fmt.Errorf("encode staged targets: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(stagedTargets(dir)), 0o755); err != nil {
		return fmt.Errorf("write staged targets: %w", err)
	}
	if err := writeAtomic(stagedTargets(dir), data, 0o644); err != nil {
		return fmt.Errorf("write staged targets: %w", err)
	}
	return nil
}

// writeTarget stores a target under its consistent-snapshot name
// targets/<dir>/<sha256>.<base>.
func writeTarget(dir, target string, data []byte) error {
	sum := sha256.Sum256(data)
	p := filepath.Join(ServedDir(dir), "targets", filepath.FromSlash(path.Dir(target)),
		hex.EncodeToString(sum[:])+"."+path.Base(target))
	if existing, err := os.ReadFile(p); err == nil && bytes.Equal(existing, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write target %s: %w", target, err)
	}
	if err := writeAtomic(p, data, 0o644); err != nil {
		return fmt.Errorf("write target %s: %w", target, err)
	}
	return nil
}

// writeAtomic replaces path with data: temp file in the same folder,
// fsync, rename.
func writeAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, bytes.NewReader(data)); err != nil {
		f.Close()
		return err
	}
	if err = f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
