package plugin

import (
	"strings"
	"testing"
)

func TestTailBufferShowsFirstLineAndLastLines(t *testing.T) {
	short := &tailBuffer{keep: stderrKeep}
	_, _ = short.Write([]byte("one\n\ntwo\n"))
	if got := short.String(); got != "one | two" {
		t.Errorf("short = %q", got)
	}

	panicky := &tailBuffer{keep: stderrKeep}
	_, _ = panicky.Write([]byte("fatal error: out of memory\n"))
	for range 500 {
		_, _ = panicky.Write([]byte("runtime.frame(0x1)\n\t/src/runtime/x.go:1\n"))
	}
	_, _ = panicky.Write([]byte("last words\n"))
	got := panicky.String()
	if !strings.HasPrefix(got, "fatal error: out of memory | … | ") || !strings.HasSuffix(got, "last words") {
		t.Errorf("long = %q", got)
	}
	if len(got) > stderrShow+64 {
		t.Errorf("long tail is %d bytes, want about %d", len(got), stderrShow)
	}
	if !panicky.contains("out of memory") || panicky.contains("never written") {
		t.Error("contains does not look at the first line and the tail")
	}
}

func TestLimitedBufferCallsOverOnceAndKeepsAccepting(t *testing.T) {
	calls := 0
	l := &limitedBuffer{max: 10, over: func() { calls++ }}
	for _, w := range []string{"12345", "67890", "x", "more"} {
		if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	data, hit := l.result()
	if string(data) != "1234567890" || !hit || calls != 1 {
		t.Fatalf("data %q hit %v calls %d", data, hit, calls)
	}
}
