package runner

import (
	"strings"
	"testing"
)

func TestTailKeepsWholeLastLines(t *testing.T) {
	tl := NewTail(16)
	tl.Write([]byte("first line that is long\nsecond\n"))
	tl.Write([]byte("third\n"))
	if got := tl.String(); got != "second\nthird" {
		t.Errorf("tail = %q, want the last whole lines", got)
	}
	short := NewTail(64)
	short.Write([]byte("  panic: cannot open /dev/ttyUSB0\xff\n\n"))
	if got := short.String(); got != "panic: cannot open /dev/ttyUSB0" {
		t.Errorf("tail = %q: not trimmed valid UTF-8", got)
	}
	one := NewTail(8)
	one.Write([]byte(strings.Repeat("x", 20)))
	if got := one.String(); got != "xxxxxxxx" {
		t.Errorf("a single long line is kept as its end: %q", got)
	}
}
