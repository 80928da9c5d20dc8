package ota

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// FetchRelease installs the agent release version for goos and goarch (Go's
// names, such as linux and arm64) into destDir, typically
// root_dir/releases/<version>: it resolves the signed target
// tufrepo.ReleaseTarget(version, goos, goarch), downloads it with resume
// and retries, checks its length and sha256 against the signed targets
// metadata, and unpacks its keystone-agent (and keystone-shim, when the
// release has one) as files of mode 0755.
//
// The files are written into a sibling destDir.partial-* folder, synced,
// and the folder renamed to destDir, so destDir is either absent or
// complete, even after a crash. A destDir that already holds exactly the
// release's files is accepted as it is (a repeated call succeeds); one
// holding anything else is left alone and fails HASH_MISMATCH wrapping
// ErrReleaseConflict. Calls are serialized by the caller, like every
// Repository call.
//
// Failures are *Error: DOWNLOAD_FAILED wrapping ErrNoRelease (no such
// version) or ErrNoReleaseBuild (no build for goos/goarch), both with
// ErrNoTarget, or ErrTooLarge (the signed length passes MaxReleaseSize);
// SIGNATURE_INVALID, METADATA_EXPIRED or ROLLBACK_ATTACK for metadata;
// HASH_MISMATCH for bytes that differ from the signed length or sha256;
// UNSAFE_ARCHIVE for an archive that is not exactly the release format;
// DISK_FULL.
func (r *Repository) FetchRelease(ctx context.Context, version, goos, goarch, destDir string) (err error) {
	if err := tufrepo.CheckVersion(version); err != nil {
		return &Error{Reason: ReasonDownloadFailed, Artifact: tufrepo.ReleaseName + " " + version,
			Err: causef([]error{ErrNoTarget, ErrNoRelease}, "no agent release: %v", err)}
	}
	target := tufrepo.ReleaseTarget(version, goos, goarch)
	if !platformName(goos) || !platformName(goarch) {
		return &Error{Reason: ReasonDownloadFailed, Artifact: tufrepo.ReleaseName + " " + version,
			Err: causef([]error{ErrNoTarget, ErrNoReleaseBuild}, "%q/%q is not a GOOS/GOARCH pair", goos, goarch)}
	}
	parent, base := filepath.Split(filepath.Clean(destDir))
	if destDir == "" || base == "" || base == "." || base == ".." {
		return fmt.Errorf("fetch release: %q is not a folder to install into", destDir)
	}
	if parent == "" {
		parent = "."
	}
	up, err := r.refresh(ctx)
	if err != nil {
		return fail(tufReason(err), target, fmt.Errorf("refresh repository metadata: %w", err))
	}
	tf, err := up.GetTargetInfo(target)
	if err != nil {
		err = lookupErr(target, err)
		if errors.Is(err, ErrNoTarget) {
			err = r.noRelease(up.GetTopLevelTargets(), version, goos, goarch)
		}
		return fail(tufReason(err), target, err)
	}
	t := r.target(target, tf)
	if limit := r.maxRelease(); t.Length > limit {
		return &Error{Reason: ReasonDownloadFailed, Artifact: target,
			Err: fmt.Errorf("%w: the signed release is %d bytes, the limit %d", ErrTooLarge, t.Length, limit)}
	}

	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fail(classifyLocal(err), target, fmt.Errorf("create release folder: %w", err))
	}
	download := filepath.Join(parent, base+".download-"+t.SHA256[:16])
	removeLeftovers(parent, base, download)
	if err := r.downloader.Download(ctx, DownloadRequest{URL: t.URL, Dest: download, SHA256: t.SHA256, Size: t.Length}); err != nil {
		return fail(ReasonDownloadFailed, target, err)
	}
	// From here on the download is complete and verified; it is only
	// needed until its files are in place.
	defer os.Remove(download)

	tmp, err := os.MkdirTemp(parent, base+".partial-")
	if err != nil {
		return fail(classifyLocal(err), target, fmt.Errorf("create release folder: %w", err))
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := r.unpackRelease(ctx, download, tmp); err != nil {
		var oe *Error
		if errors.As(err, &oe) && oe.Artifact == "" {
			oe.Artifact = target
		}
		return fail(classifyLocal(err), target, err)
	}
	if err := install(tmp, filepath.Join(parent, base)); err != nil {
		return fail(classifyLocal(err), target, err)
	}
	return nil
}

// noRelease tells a version the repository lacks from a build it lacks.
func (r *Repository) noRelease(targets map[string]*metadata.TargetFiles, version, goos, goarch string) error {
	prefix := path.Join(tufrepo.ReleaseName, version) + "/"
	var builds []string
	for p := range targets {
		if b, ok := strings.CutPrefix(p, prefix); ok {
			builds = append(builds, b)
		}
	}
	if len(builds) == 0 {
		return causef([]error{ErrNoTarget, ErrNoRelease}, "the repository has no agent release %s", version)
	}
	slices.Sort(builds)
	return causef([]error{ErrNoTarget, ErrNoReleaseBuild}, "agent release %s has no build for %s/%s (it has %s)",
		version, goos, goarch, strings.Join(builds, ", "))
}

// causeError is a message that matches its sentinel causes with errors.Is
// without repeating their text.
type causeError struct {
	msg    string
	causes []error
}

func causef(causes []error, format string, args ...any) error {
	return &causeError{msg: fmt.Sprintf(format, args...), causes: causes}
}

func (e *causeError) Error() string { return e.msg }

func (e *causeError) Is(target error) bool { return slices.Contains(e.causes, target) }

func (r *Repository) maxRelease() int64 {
	if r.cfg.MaxReleaseSize > 0 {
		return r.cfg.MaxReleaseSize
	}
	return tufrepo.MaxReleaseBytes
}

// platformName reports whether s may be a GOOS or GOARCH: lowercase
// letters and digits.
func platformName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// removeLeftovers removes what an interrupted FetchRelease into
// parent/base left behind: partial folders, and downloads of other bytes
// than keep (which a later call resumes).
func removeLeftovers(parent, base, keep string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		p := filepath.Join(parent, n)
		switch {
		case strings.HasPrefix(n, base+".partial-"):
			_ = os.RemoveAll(p)
		case strings.HasPrefix(n, base+".download-") && p != keep:
			_ = os.Remove(p)
		}
	}
}

// unpackRelease writes the files of the release archive at archive into
// the empty folder dir, each synced and mode 0755, then syncs dir.
func (r *Repository) unpackRelease(ctx context.Context, archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("open release: %w", err)
	}
	defer f.Close()
	put := func(name string, _ int64, body io.Reader) error {
		return writeExecutable(filepath.Join(dir, name), body)
	}
	if _, err := readRelease(ctx, f, r.maxRelease(), put); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return syncDir(dir)
}

func writeExecutable(p string, body io.Reader) (err error) {
	out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err = io.Copy(out, body); err != nil {
		return err
	}
	if err = out.Chmod(0o755); err != nil { // OpenFile's mode is filtered by the umask
		return err
	}
	return out.Sync()
}

// install renames the complete folder tmp to dest, or, when dest already
// exists, accepts it if it holds the same files and removes tmp.
func install(tmp, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return sameOrConflict(tmp, dest)
	}
	if err := os.Rename(tmp, dest); err != nil {
		if _, statErr := os.Lstat(dest); statErr == nil {
			return sameOrConflict(tmp, dest) // it appeared meanwhile
		}
		return fmt.Errorf("install release: %w", err)
	}
	return syncDir(filepath.Dir(dest))
}

func sameOrConflict(tmp, dest string) error {
	diff, err := treeDiff(tmp, dest)
	if err != nil {
		return fmt.Errorf("compare with installed release %s: %w", dest, err)
	}
	if diff != "" {
		return &Error{Reason: ReasonHashMismatch, Artifact: dest, Err: fmt.Errorf("%w: %s", ErrReleaseConflict, diff)}
	}
	return os.RemoveAll(tmp)
}

// treeDiff says how the folder got differs from want, a folder of regular
// files: "" when got holds exactly the same names, each a regular file of
// mode 0755 with the same bytes.
func treeDiff(want, got string) (string, error) {
	fi, err := os.Lstat(got)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "it is not a folder", nil
	}
	wantEntries, err := os.ReadDir(want)
	if err != nil {
		return "", err
	}
	gotEntries, err := os.ReadDir(got)
	if err != nil {
		return "", err
	}
	names := func(es []fs.DirEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	if w, g := names(wantEntries), names(gotEntries); !slices.Equal(w, g) {
		return fmt.Sprintf("it holds %v, the release %v", g, w), nil
	}
	for _, e := range gotEntries {
		info, err := e.Info()
		if err != nil {
			return "", err
		}
		if !info.Mode().IsRegular() || info.Mode().Perm() != 0o755 {
			return fmt.Sprintf("%s is %v, not a regular file of mode 0755", e.Name(), info.Mode()), nil
		}
		same, err := sameBytes(filepath.Join(want, e.Name()), filepath.Join(got, e.Name()))
		if err != nil {
			return "", err
		}
		if !same {
			return fmt.Sprintf("%s has other bytes than the release's", e.Name()), nil
		}
	}
	return "", nil
}

func sameBytes(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		endA := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		endB := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		switch {
		case ea != nil && !endA:
			return false, ea
		case eb != nil && !endB:
			return false, eb
		case endA || endB:
			return endA == endB, nil
		}
	}
}
