package recipes

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrUnknownReference is wrapped by the error Interpolate returns when its
// lookup does not know a ${…} reference.
var ErrUnknownReference = errors.New("unknown reference")

// FieldError is one problem found in a recipe or manifest.
type FieldError struct {
	// File is the file the problem is in; "" when parsing bytes with no name.
	File string
	// Line and Col locate the problem, both counting from 1; 0 = unknown
	// (for example a required field that is absent).
	Line, Col int
	// Path is the field path, such as "lifecycle.run.restart_policy" or
	// "artifacts[1].sha256"; "" for a syntax error outside any field.
	Path string
	// Message says what is wrong, in words a recipe author can act on.
	Message string
}

// Error formats the error as "file:line:col: path: message", leaving out
// the parts that are unknown ("file: path: message", "file:line:col: message").
// Control characters are escaped (see printable), so that a key, value or
// file name written to a terminal or log cannot act on it, and one error
// stays one line.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(printable(e.File))
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Col))
		}
	}
	if e.Path != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(printable(e.Path))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(printable(e.Message))
	return b.String()
}

// printable escapes the runes of s that are not printable (C0 and C1
// controls, newlines and tabs included, DEL, format characters such as
// bidirectional overrides, invalid UTF-8) the way Go quotes them: \x1b,
// \n, \u202e. Printable text is left as it is, so names and messages read
// naturally, and escaping twice changes nothing.
func printable(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r == utf8.RuneError || !strconv.IsPrint(r) })
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for s = s[i:]; s != ""; {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[0])
		case !strconv.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// ErrorList is every problem found in a file (and the files it imports),
// ordered by file, line and column. The parsers return it as their error
// when validation fails; use errors.As to get it back.
type ErrorList []*FieldError

// Error writes one error per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives the list's errors to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// collector gathers the errors of one parse. It knows the documents involved
// so that an error named only by its field path gets the position of the
// field in the file that provided it.
type collector struct {
	list ErrorList
	// docs are the documents whose positions name semantic errors, the one
	// whose values won a merge first.
	docs []*document
	// rank orders files for sorting: the order in which they were read.
	rank map[string]int
	// bad holds field paths that already have a shape error (wrong type,
	// bad duration…), so that checks on their zero value stay quiet.
	bad map[string]bool
}

func newCollector() *collector {
	return &collector{rank: map[string]int{}, bad: map[string]bool{}}
}

// noteFile gives a file its place in the error order.
func (c *collector) noteFile(name string) {
	if _, ok := c.rank[name]; !ok {
		c.rank[name] = len(c.rank)
	}
}

// addAt records an error at a known file and position.
func (c *collector) addAt(file string, line, col int, path, msg string) {
	c.noteFile(file)
	c.list = append(c.list, &FieldError{File: file, Line: line, Col: col, Path: path, Message: msg})
}

// addIn records an error about path in one document, at the position of the
// path or of its nearest ancestor present in that document.
func (c *collector) addIn(d *document, path, msg string) {
	p, _, _ := d.pos.find(path)
	c.addAt(d.name, int(p.line), int(p.col), path, msg)
}

// add records a semantic error about a field of the merged value. It names
// the file and position of the field (or its nearest present ancestor) in
// the document that won the merge, and stays quiet when the field or one of
// its ancestors already has a shape error.
func (c *collector) add(path, msg string) {
	if c.isBad(path) {
		return
	}
	if len(c.docs) == 0 {
		c.addAt("", 0, 0, path, msg)
		return
	}
	// The deepest ancestor written anywhere wins; among documents that
	// write it, the first, whose values won the merge.
	best, depth, at := c.docs[0], -1, position{}
	for _, d := range c.docs {
		if p, n, ok := d.pos.find(path); ok && n > depth {
			best, depth, at = d, n, p
		}
	}
	c.addAt(best.name, int(at.line), int(at.col), path, msg)
}

// isBad reports whether path or one of its ancestors has a shape error.
// It looks up each ancestor rather than comparing with every bad path, so
// a file with many errors is not checked in quadratic time.
func (c *collector) isBad(path string) bool {
	if len(c.bad) == 0 {
		return false
	}
	for off := 0; off < len(path); {
		seg, rest := nextSeg(path[off:])
		if c.bad[path[:off+len(seg)]] {
			return true
		}
		off = len(path) - len(rest)
	}
	return false
}

// result sorts and de-duplicates the errors; nil when there are none. The
// paths and messages it hands out are printable, for callers that show
// them without Error.
func (c *collector) result() error {
	if len(c.list) == 0 {
		return nil
	}
	for _, e := range c.list {
		e.Path, e.Message = printable(e.Path), printable(e.Message)
	}
	lineKey := func(n int) int {
		if n == 0 {
			return int(^uint(0) >> 1) // unknown positions last within a file
		}
		return n
	}
	sort.SliceStable(c.list, func(i, j int) bool {
		a, b := c.list[i], c.list[j]
		if c.rank[a.File] != c.rank[b.File] {
			return c.rank[a.File] < c.rank[b.File]
		}
		if lineKey(a.Line) != lineKey(b.Line) {
			return lineKey(a.Line) < lineKey(b.Line)
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Message < b.Message
	})
	out := c.list[:0]
	for _, e := range c.list {
		if len(out) > 0 && *e == *out[len(out)-1] {
			continue
		}
		out = append(out, e)
	}
	return out
}
