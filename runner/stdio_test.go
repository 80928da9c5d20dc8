package runner

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe to read while the runner writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestStdinStdoutAndStderrCopyForPlugins(t *testing.T) {
	e := newEnv(t, "", false)
	var out, errCopy lockedBuffer
	p := e.start(t, ProcessSpec{
		Component: "com.example.stdio",
		Script:    `read -r line; echo "got:$line"; echo "warn:$line" >&2`,
		Stdin:     strings.NewReader("hello plugin\n"),
		Stdout:    &out,
		Stderr:    &errCopy,
	})
	if st := p.Wait(); !st.Success() {
		t.Fatalf("status = %+v", st)
	}
	if got := out.String(); got != "got:hello plugin\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := errCopy.String(); got != "warn:hello plugin\n" {
		t.Errorf("stderr copy = %q", got)
	}
	log := e.tail(t, "com.example.stdio")
	if strings.Contains(log, "got:") {
		t.Errorf("stdout reached the log although Stdout was set:\n%s", log)
	}
	if !strings.Contains(log, "[stderr] warn:hello plugin") {
		t.Errorf("stderr missing from the log:\n%s", log)
	}
}

// failingWriter accepts n bytes, then fails every write.
type failingWriter struct {
	mu   sync.Mutex
	left int
	got  int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.left <= 0 {
		return 0, errors.New("full")
	}
	n := min(len(p), w.left)
	w.left -= n
	w.got += n
	return n, errors.New("full")
}

func TestFailingStdoutWriterNeverBlocksTheProcess(t *testing.T) {
	e := newEnv(t, "", false)
	w := &failingWriter{left: 10}
	// 1 MiB is far more than a pipe buffer: a reader that stopped reading
	// would leave the process blocked forever.
	p := e.start(t, ProcessSpec{
		Component: "com.example.flood",
		Script:    `head -c 1048576 /dev/zero`,
		Stdout:    w,
	})
	if st := p.Wait(); !st.Success() {
		t.Fatalf("status = %+v", st)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.got != 10 {
		t.Fatalf("writer got %d bytes, want the 10 it accepted", w.got)
	}
}
