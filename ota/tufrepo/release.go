package tufrepo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrReleaseTooLarge: the release binaries together pass MaxReleaseBytes,
// which devices would refuse.
var ErrReleaseTooLarge = errors.New("tufrepo: agent release too large")

// Release is an agent release to stage: the binaries of one version for one
// platform.
type Release struct {
	// Version is the agent version, a strict semantic version (CheckVersion).
	// Required.
	Version string
	// OS is Go's GOOS of the binaries; only "linux" is released. "" = read
	// from the ELF header of Agent.
	OS string
	// Arch is Go's GOARCH of the binaries, one of ReleaseArches. "" = read
	// from the ELF header of Agent.
	Arch string
	// Agent is the path of the keystone-agent binary. Required.
	Agent string
	// Shim is the path of the keystone-shim binary. "" = none: the agent
	// runs itself as the shim.
	Shim string
}

// AddedRelease is what AddRelease staged.
type AddedRelease struct {
	Version, OS, Arch string
	// Target is ReleaseTarget(Version, OS, Arch).
	Target string
	// Files are the names in the archive: ReleaseAgentFile, then
	// ReleaseShimFile when a shim was given.
	Files []string
	// Length and SHA256 are the archive's, as the targets metadata signs them.
	Length int64
	SHA256 string
}

// AddRelease stages an agent release: the agent (and shim) binaries are
// packed into a gzip'd tar, the target ReleaseTarget(version, os, arch),
// and copied into the served targets folder under its hash-prefixed name.
// The archive is deterministic (names and order fixed, mode 0755, owner 0,
// mtime 1970-01-01), so adding the same binaries again changes nothing.
//
// Each binary must be an ELF executable for linux (ExecutablePlatform) of
// the release's OS and Arch; when those are empty they are taken from the
// agent binary. A file that is not such an executable fails wrapping
// ErrNotExecutable, binaries over MaxReleaseBytes together wrap
// ErrReleaseTooLarge, and other bytes for a release already listed wrap
// ErrImmutable. Nothing is visible to devices before Publish.
func AddRelease(dir string, rel Release, opts Options) (AddedRelease, error) {
	if err := CheckVersion(rel.Version); err != nil {
		return AddedRelease{}, fmt.Errorf("add agent release: %w", err)
	}
	what := ReleaseName + " " + rel.Version
	if rel.Agent == "" {
		return AddedRelease{}, fmt.Errorf("add %s: no agent binary given", what)
	}
	goos, goarch, err := ExecutablePlatform(rel.Agent)
	if err != nil {
		return AddedRelease{}, fmt.Errorf("add %s: %w", what, err)
	}
	if (rel.OS != "" && rel.OS != goos) || (rel.Arch != "" && rel.Arch != goarch) {
		return AddedRelease{}, fmt.Errorf("add %s: %w", what, notExec(rel.Agent, "is built for %s/%s, not %s/%s",
			goos, goarch, or2(rel.OS, goos), or2(rel.Arch, goarch)))
	}
	files := []releaseFile{{ReleaseAgentFile, rel.Agent}}
	if rel.Shim != "" {
		sos, sarch, err := ExecutablePlatform(rel.Shim)
		if err != nil {
			return AddedRelease{}, fmt.Errorf("add %s: shim: %w", what, err)
		}
		if sos != goos || sarch != goarch {
			return AddedRelease{}, fmt.Errorf("add %s: shim: %w", what, notExec(rel.Shim, "is built for %s/%s, the agent for %s/%s",
				sos, sarch, goos, goarch))
		}
		files = append(files, releaseFile{ReleaseShimFile, rel.Shim})
	}
	what += " for " + goos + "/" + goarch
	data, err := packRelease(files)
	if err != nil {
		return AddedRelease{}, fmt.Errorf("add %s: %w", what, err)
	}

	staged, err := loadStaged(dir)
	if err != nil {
		return AddedRelease{}, fmt.Errorf("add %s: %w", what, err)
	}
	pub, err := loadPublished(dir)
	if err != nil {
		return AddedRelease{}, fmt.Errorf("add %s: %w", what, err)
	}
	target := ReleaseTarget(rel.Version, goos, goarch)
	tf, err := metadata.TargetFile().FromBytes(target, data, "sha256")
	if err != nil {
		return AddedRelease{}, fmt.Errorf("add %s: hash %s: %w", what, target, err)
	}
	if old, ok := staged.Signed.Targets[target]; ok && !old.Equal(*tf) {
		return AddedRelease{}, fmt.Errorf("add %s: %s: %w", what, target, ErrImmutable)
	}
	if err := writeTarget(dir, target, data); err != nil {
		return AddedRelease{}, fmt.Errorf("add %s: %w", what, err)
	}
	if _, ok := staged.Signed.Targets[target]; !ok {
		staged.Signed.Targets[target] = tf
		if staged.Signed.Version <= pub.targets.Signed.Version {
			staged.Signed.Version = pub.targets.Signed.Version + 1
		}
		if err := saveStaged(dir, staged); err != nil {
			return AddedRelease{}, fmt.Errorf("add %s: %w", what, err)
		}
	}
	added := AddedRelease{Version: rel.Version, OS: goos, Arch: goarch, Target: target,
		Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])}
	for _, f := range files {
		added.Files = append(added.Files, f.name)
	}
	return added, nil
}

func or2(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// releaseFile is one binary of a release: its name in the archive and the
// local file it comes from.
type releaseFile struct {
	name, path string
}

// releaseModTime is every entry's mtime: the archive depends on the bytes
// of the binaries only.
var releaseModTime = time.Unix(0, 0).UTC()

// packRelease writes the release archive of files, in order.
func packRelease(files []releaseFile) ([]byte, error) {
	var total int64
	infos := make([]os.FileInfo, len(files))
	for i, f := range files {
		fi, err := os.Stat(f.path)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, notExec(f.path, "is not a regular file")
		}
		infos[i] = fi
		total += fi.Size()
	}
	if total > MaxReleaseBytes {
		return nil, fmt.Errorf("%w: the binaries hold %d bytes, more than the %d devices accept", ErrReleaseTooLarge, total, MaxReleaseBytes)
	}
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	for i, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: infos[i].Size(), Mode: 0o755,
			ModTime: releaseModTime, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("pack %s: %w", f.path, err)
		}
		if err := copyInto(tw, f.path); err != nil {
			return nil, fmt.Errorf("pack %s: %w", f.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack release: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("pack release: %w", err)
	}
	return buf.Bytes(), nil
}

// copyInto copies the file at path into tw; a file that changed size since
// its header was written fails (tar refuses too many or too few bytes).
func copyInto(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
