package ota

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/keystone-edge/keystone/ota/tufrepo"
)

// maxReleasePadding bounds what may follow the end of a release's tar
// inside its gzip stream: zero blocks, as tar writers pad records with.
const maxReleasePadding = 1 << 20

// readRelease reads an agent release archive from r: a gzip'd tar holding
// exactly the regular files tufrepo.ReleaseAgentFile (required) and
// tufrepo.ReleaseShimFile (optional), once each, at most maxBytes together,
// followed by nothing but zero padding. For each file it calls put with the
// file's name, size and a reader of exactly its bytes. It returns the names
// read, in archive order.
//
// Anything else — a folder, a link, another name (a path such as
// ./keystone-agent or ../keystone-agent included), a second copy, a
// missing agent, a truncated stream — fails with an UNSAFE_ARCHIVE *Error
// wrapping ErrUnsafeArchive (and ErrTooLarge past maxBytes), before put
// sees a byte of the offending entry. An error from put is returned as it
// is, unless it comes from reading the archive.
func readRelease(ctx context.Context, r io.Reader, maxBytes int64, put func(name string, size int64, body io.Reader) error) ([]string, error) {
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 1<<16))
	if err != nil {
		return nil, unsafef("release is not a gzip'd tar: %v", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var names []string
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if h != nil {
				return nil, unsafef("release entry %q: %v", h.Name, err)
			}
			return nil, unsafef("release tar: %v", err)
		}
		if h.Name != tufrepo.ReleaseAgentFile && h.Name != tufrepo.ReleaseShimFile {
			return nil, unsafef("release entry %q (%s): a release holds only the regular files %s and %s",
				h.Name, entryKind(h.Typeflag), tufrepo.ReleaseAgentFile, tufrepo.ReleaseShimFile)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			return nil, unsafef("release entry %q is a %s, not a regular file", h.Name, entryKind(h.Typeflag))
		}
		for _, n := range names {
			if n == h.Name {
				return nil, unsafef("release entry %q appears twice", h.Name)
			}
		}
		if h.Size > maxBytes-total {
			return nil, tooLargef("release files pass the %d byte limit (%q declares %d bytes)", maxBytes, h.Name, h.Size)
		}
		total += h.Size
		body := &entryReader{r: tr, left: h.Size}
		if err := put(h.Name, h.Size, body); err != nil {
			if body.err != nil {
				return nil, unsafef("release entry %q: %v", h.Name, body.err)
			}
			return nil, err
		}
		if body.left != 0 {
			return nil, fmt.Errorf("release entry %q: %d bytes left unread", h.Name, body.left)
		}
		names = append(names, h.Name)
	}
	if !slices.Contains(names, tufrepo.ReleaseAgentFile) {
		return nil, unsafef("release holds no %s", tufrepo.ReleaseAgentFile)
	}
	// Read the stream to its end: this checks the gzip trailer (CRC and
	// length) and that nothing is hidden after the tar.
	n, err := io.Copy(zeroWriter{}, io.LimitReader(gz, maxReleasePadding+1))
	switch {
	case errors.Is(err, errNotZero):
		return nil, unsafef("release has data after the end of its tar")
	case err != nil:
		return nil, unsafef("release stream: %v", err)
	case n > maxReleasePadding:
		return nil, unsafef("release has more than %d bytes of padding after its tar", maxReleasePadding)
	}
	return names, nil
}

// tooLargef is unsafef for an archive past its size limit: the cause also
// matches ErrTooLarge.
func tooLargef(format string, args ...any) error {
	return &Error{Reason: ReasonUnsafeArchive, Err: causef([]error{ErrUnsafeArchive, ErrTooLarge}, "%v: "+format, append([]any{ErrUnsafeArchive}, args...)...)}
}

// entryKind names a tar entry type for messages.
func entryKind(t byte) string {
	switch t {
	case tar.TypeReg, tar.TypeRegA:
		return "regular file"
	case tar.TypeDir:
		return "folder"
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device file"
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeXGlobalHeader:
		return "pax global header"
	default:
		return fmt.Sprintf("entry of type %q", t)
	}
}

// entryReader reads one entry's bytes, remembering a read error (a
// truncated or corrupt archive) apart from what put does with them.
type entryReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *entryReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

var errNotZero = errors.New("non-zero byte")

// zeroWriter accepts zero bytes only.
type zeroWriter struct{}

func (zeroWriter) Write(p []byte) (int, error) {
	for i, b := range p {
		if b != 0 {
			return i, errNotZero
		}
	}
	return len(p), nil
}
