package deploy

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of a request's file names. They are the usual Linux limits
// (NAME_MAX and PATH_MAX), so that a name the agent accepts is one it can
// always stage, and a name it refuses is refused before anything touches
// the disk.
const (
	MaxFileNameComponent = 255
	MaxFileNamePath      = 4096
)

// CheckFileNames checks the names of a request's files before anything is
// staged: each must be a clean relative slash path (path.Clean leaves it
// as it is: no leading "/", no "." or ".." component, no empty component),
// of printable characters, within MaxFileNameComponent per component and
// MaxFileNamePath in all; and no name may be a folder of another ("a"
// together with "a/b"), since one file cannot be both. It returns nil, or
// a *ValidationError listing every bad name, each quoted with %q so that
// control characters are shown, not obeyed.
func CheckFileNames(files map[string][]byte) error {
	var probs []Problem
	names := make([]string, 0, len(files))
	for name := range files {
		if msg := fileNameProblem(name); msg != "" {
			probs = append(probs, invalid("file %q: %s", shorten(name), msg))
			continue
		}
		names = append(names, name)
	}
	probs = append(probs, overlaps(names)...)
	if len(probs) == 0 {
		return nil
	}
	slices.SortFunc(probs, func(a, b Problem) int { return strings.Compare(a.Message, b.Message) })
	return &ValidationError{Problems: probs}
}

// fileNameProblem says what is wrong with one name, or "".
func fileNameProblem(name string) string {
	switch {
	case name == "":
		return "the name is empty"
	case len(name) > MaxFileNamePath:
		return fmt.Sprintf("the name has %d bytes, more than %d", len(name), MaxFileNamePath)
	case !utf8.ValidString(name):
		return "the name is not UTF-8"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "the name holds a control character"
	case strings.HasPrefix(name, "/"):
		return "must be relative to the manifest's folder, not start with /"
	}
	for part := range strings.SplitSeq(name, "/") {
		switch {
		case part == "":
			return "has an empty path component (a doubled or trailing /)"
		case part == "." || part == "..":
			return fmt.Sprintf("has a %q component; name files by their clean path inside the manifest's folder", part)
		case len(part) > MaxFileNameComponent:
			return fmt.Sprintf("a path component has %d bytes, more than %d", len(part), MaxFileNameComponent)
		}
	}
	if path.Clean(name) != name { // nothing left to clean, but stay exact
		return fmt.Sprintf("is not a clean path (want %q)", path.Clean(name))
	}
	return ""
}

// overlaps finds names that are a folder of another name. Sorted with "/"
// below every other byte, a folder comes right before the first name
// inside it, so neighbours are all that needs comparing; this needs no
// memory beyond the sorted slice, whatever the names' depth.
func overlaps(names []string) []Problem {
	slices.SortFunc(names, folderOrder)
	var probs []Problem
	for i := 1; i < len(names); i++ {
		dir, inside := names[i-1], names[i]
		if len(inside) > len(dir) && inside[len(dir)] == '/' && strings.HasPrefix(inside, dir) {
			probs = append(probs, invalid("file %q: is also the folder of %q; a name cannot be both a file and a folder",
				shorten(dir), shorten(inside)))
		}
	}
	return probs
}

// folderOrder orders names byte by byte with "/" first.
func folderOrder(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return cmp.Compare(slashFirst(a[i]), slashFirst(b[i]))
		}
	}
	return cmp.Compare(len(a), len(b))
}

func slashFirst(c byte) int {
	if c == '/' {
		return -1
	}
	return int(c)
}

// shorten keeps an error about a huge name readable: the start and the
// length are enough to find it.
func shorten(name string) string {
	const keep = 120
	if len(name) <= keep {
		return name
	}
	cut := keep
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", name[:cut], len(name))
}
