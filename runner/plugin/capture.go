package plugin

import (
	"bytes"
	"strings"
	"sync"
	"unicode/utf8"
)

// Bounds of what a run keeps of its program's output.
const (
	// DefaultMaxOutput caps a run's stdout: past it the run is stopped and
	// fails with ErrOutputTooLarge.
	DefaultMaxOutput = 1 << 20 // 1 MiB
	// stderrKeep is how much of the end of stderr a run keeps.
	stderrKeep = 4 << 10
	// stderrShow is how much of that tail an error message shows.
	stderrShow = 512
)

// limitedBuffer keeps up to max bytes; the first write past the cap calls
// over once and the rest is dropped. Writes never fail, so the copier
// keeps draining the pipe while the run is being stopped.
type limitedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	max  int
	over func()
	hit  bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hit {
		return len(p), nil
	}
	if l.buf.Len()+len(p) > l.max {
		l.hit = true
		if l.over != nil {
			l.over()
		}
		return len(p), nil
	}
	l.buf.Write(p)
	return len(p), nil
}

// result returns what was kept and whether the cap was passed.
func (l *limitedBuffer) result() ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes()), l.hit
}

// tailBuffer keeps the first line and the last keep bytes written to it:
// a Go panic says what went wrong first, a Python traceback last.
type tailBuffer struct {
	mu      sync.Mutex
	keep    int
	head    []byte // up to the first newline, at most stderrShow/2 bytes
	headEnd bool
	buf     []byte
	total   int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += len(p)
	if !t.headEnd {
		line, _, found := bytes.Cut(p, []byte("\n"))
		room := stderrShow/2 - len(t.head)
		t.head = append(t.head, line[:min(len(line), room)]...)
		t.headEnd = found || len(t.head) >= stderrShow/2
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.keep; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// contains reports whether the first line or the kept tail holds s.
func (t *tailBuffer) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Contains(t.head, []byte(s)) || bytes.Contains(t.buf, []byte(s))
}

// String returns what was written on one line (newlines become " | "):
// all of it when short, else the first line, "…" and the last lines, in
// about stderrShow bytes.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	head, b, total := string(t.head), bytes.Clone(t.buf), t.total
	t.mu.Unlock()
	b = bytes.TrimSpace(b)
	prefix := ""
	if total > stderrShow || len(b) > stderrShow {
		room := stderrShow - len(head)
		if len(b) > room {
			b = b[len(b)-room:]
			if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
				b = b[i+1:]
			}
			for len(b) > 0 && !utf8.RuneStart(b[0]) {
				b = b[1:]
			}
		}
		if h := strings.TrimSpace(head); h != "" && !bytes.HasPrefix(b, []byte(h)) {
			prefix = h + "\n…\n"
		} else {
			prefix = "…\n"
		}
	}
	s := strings.ToValidUTF8(prefix+string(b), "?")
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(nonEmpty(lines), " | ")
}

// nonEmpty drops empty lines.
func nonEmpty(lines []string) []string {
	out := lines[:0]
	for _, l := range lines {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
