package runner

import (
	"bytes"
	"strings"
	"sync"
)

// StderrTailBytes is how much of a process's stderr its ExitStatus quotes:
// enough for the error a program prints before it dies.
const StderrTailBytes = 1024

// Tail keeps the last bytes written to it, so that a failure can quote
// what a process or script said last. Safe for concurrent use.
type Tail struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

// NewTail returns a Tail that keeps the last max bytes.
func NewTail(max int) *Tail { return &Tail{max: max} }

// Write keeps the end of p; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	return len(p), nil
}

// String is what was kept, as valid UTF-8 without surrounding blank space;
// when older output was cut off, the partial first line is dropped too.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.truncated {
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(bytes.ToValidUTF8(b, nil)))
}
