package logs

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// TestSplitterMakesTheLinesCaptureMakes feeds the same bytes to Capture
// and, cut into pieces in many ways, to a Splitter, and wants the same
// lines from both: hand-picked edge cases around MaxLineBytes, carriage
// returns and the end of the output, then random text over a small
// alphabet that makes those cases common, for several MaxLineBytes
// (including ones under bufio's 16-byte minimum).
func TestSplitterMakesTheLinesCaptureMakes(t *testing.T) {
	edge := func(limit int) []string {
		l := func(s string, n int) string { return strings.Repeat(s, max(n, 0)) }
		var out []string
		for _, limit := range []int{limit, 16} { // 16: bufio's smallest buffer
			out = append(out,
				"", "\n", "\n\n", "\r\n", "\r", "a", "a\n", "a\r\n", "a\r", "a\rb\n", "\r\r\n",
				l("x", limit-1)+"\n", l("x", limit)+"\n", l("x", limit+1)+"\n",
				l("x", limit-1)+"\r\n", l("x", limit-2)+"\r\n", l("x", limit)+"\r\n",
				l("x", limit), l("x", limit+1), l("x", 2*limit), l("x", 2*limit)+"\n", l("x", 3*limit+5),
				"no newline at the end", "one\r\ntwo\n"+l("L", 40)+"\nend",
				"é"+l("é", limit)+"\n", // cut inside a multi-byte character
			)
		}
		return out
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "\n", "\r", "\r\n", "é"}
	for _, limit := range []int{1, 5, 15, 16, 17, 64, 200} {
		inputs := edge(limit)
		for range 120 {
			var b strings.Builder
			for n := rng.IntN(400); b.Len() < n; {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			inputs = append(inputs, b.String())
		}
		// At most a line per byte of input, and less than 500 bytes: the
		// default tail of 500 lines holds every line.
		m := open(t, Config{MaxLineBytes: limit})
		for i, in := range inputs {
			want := captured(t, mustLog(t, m, fmt.Sprint("c", i)), in)
			for _, cut := range []string{"whole", "bytes", "random"} {
				got := split(t, mustLog(t, m, fmt.Sprint("s", i, cut)), in, cut, rng)
				if got != want {
					t.Fatalf("MaxLineBytes %d, input %d %q cut %s:\nsplitter %q\ncapture  %q", limit, i, in, cut, got, want)
				}
			}
		}
	}
}

// captured is what Capture writes of in, the lines joined with " | ",
// each with its stream.
func captured(t *testing.T, l *Log, in string) string {
	if err := l.Capture(Stderr, iotest.HalfReader(strings.NewReader(in))); err != nil {
		t.Fatal(err)
	}
	return joined(l.Tail(0))
}

// split is what a Splitter writes of in, fed whole, a byte at a time or
// in random pieces, then flushed.
func split(t *testing.T, l *Log, in, cut string, rng *rand.Rand) string {
	limit := l.m.cfg.MaxLineBytes
	s := l.Splitter(Stderr)
	b := []byte(in)
	for len(b) > 0 {
		n := len(b)
		switch cut {
		case "bytes":
			n = 1
		case "random":
			n = min(n, 1+rng.IntN(2*limit+3))
		}
		if err := s.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		if s.Partial() != (len(s.partial) > 0) || len(s.partial) >= max(limit, 16) {
			t.Fatalf("partial line of %d bytes kept with MaxLineBytes %d", len(s.partial), limit)
		}
		b = b[n:]
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.partial != nil {
		t.Fatal("the partial line is still held after Flush")
	}
	return joined(l.Tail(0))
}

func joined(lines []Line) string {
	var b strings.Builder
	for _, line := range lines {
		fmt.Fprintf(&b, "%s:%q | ", line.Stream, line.Text)
	}
	return b.String()
}

func TestSplitterHoldsNoBufferBetweenWholeLines(t *testing.T) {
	m := open(t, Config{})
	l := mustLog(t, m, "s")
	s := l.Splitter(Stdout)
	if err := s.Write([]byte("one\ntwo\n")); err != nil {
		t.Fatal(err)
	}
	if s.partial != nil {
		t.Fatal("a buffer is held with no partial line")
	}
	if err := s.Write([]byte("thr")); err != nil {
		t.Fatal(err)
	}
	if !s.Partial() {
		t.Fatal("the partial line was not kept")
	}
	if err := s.Write([]byte("ee\n")); err != nil {
		t.Fatal(err)
	}
	if s.partial != nil {
		t.Fatal("the buffer is still held once the line is complete")
	}
	if got := texts(l.Tail(0)); got != "one two three" {
		t.Fatalf("lines %s", got)
	}
}

func TestSplitterGoesOnAfterAFailedWriteAndReportsIt(t *testing.T) {
	m := open(t, Config{})
	l := mustLog(t, m, "s")
	s := l.Splitter(Stdout)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write([]byte("a\nb\npart")); err != ErrClosed {
		t.Fatalf("Write after close = %v, want ErrClosed", err)
	}
	if s.partial == nil {
		t.Fatal("the partial line after the failed writes was not kept")
	}
	if err := s.Flush(); err != ErrClosed {
		t.Fatalf("Flush after close = %v, want ErrClosed", err)
	}
	// The lines still reach the in-memory tail, as with Capture.
	if got := texts(l.Tail(0)); got != "a b part" {
		t.Fatalf("lines %s", got)
	}
}
