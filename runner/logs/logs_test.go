package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 123_000_000, time.UTC)

func fixedNow() time.Time { return t0 }

func open(t *testing.T, cfg Config) *Manager {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	m, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func mustLog(t *testing.T, m *Manager, name string) *Log {
	t.Helper()
	l, err := m.Log(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// onDisk sums file sizes per component as the directory really has them.
func onDisk(t *testing.T, dir string) (map[string]int64, int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int64{}
	var total int64
	for _, e := range entries {
		st, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		name, _, ok := parseFileName(e.Name())
		if !ok {
			t.Fatalf("stray file %s", e.Name())
		}
		per[name] += st.Size()
		total += st.Size()
	}
	return per, total
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRecordFormat(t *testing.T) {
	for _, tc := range []struct {
		line Line
		want string
	}{
		{Line{t0, Stdout, "hello"}, "2026-11-25T10:00:00.123Z hello\n"},
		{Line{t0, Stderr, "boom"}, "2026-11-25T10:00:00.123Z [stderr] boom\n"},
		{Line{t0.In(time.FixedZone("x", 3600)), Agent, "dropped 5 bytes"}, "2026-11-25T10:00:00.123Z [keystone] dropped 5 bytes\n"},
	} {
		if got := string(tc.line.record()); got != tc.want {
			t.Errorf("record = %q, want %q", got, tc.want)
		}
	}
}

func TestChattyWriterNeverExceedsCaps(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), FileSize: 1000, ComponentCap: 3000, GlobalCap: 5000, MaxLineBytes: 200}
	m := open(t, cfg)
	chatty, other := mustLog(t, m, "com.example.chatty"), mustLog(t, m, "com.example.other")
	calm := mustLog(t, m, "com.example.calm")
	for i := range 5 {
		if err := calm.Write(Stdout, fmt.Sprintf("calm line %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3000 {
		if err := chatty.Write(Stdout, fmt.Sprintf("chatty line %06d %s", i, strings.Repeat("x", 40))); err != nil {
			t.Fatal(err)
		}
		if err := other.Write(Stderr, fmt.Sprintf("other line %06d", i)); err != nil {
			t.Fatal(err)
		}
		if i%50 != 0 {
			continue
		}
		per, total := onDisk(t, cfg.Dir)
		for name, n := range per {
			if n > cfg.ComponentCap {
				t.Fatalf("after line %d: %s uses %d bytes, cap %d", i, name, n, cfg.ComponentCap)
			}
		}
		if total > cfg.GlobalCap {
			t.Fatalf("after line %d: %d bytes on disk, global cap %d", i, total, cfg.GlobalCap)
		}
		if u := m.Usage(); u.Bytes != total {
			t.Fatalf("accounted %d bytes, disk has %d", u.Bytes, total)
		}
	}
	// The newest line is in the current file; the calm component lost nothing.
	if !strings.Contains(read(t, filepath.Join(cfg.Dir, "com.example.chatty.log")), "chatty line 002999") {
		t.Error("newest chatty line missing from the current file")
	}
	calmText := read(t, filepath.Join(cfg.Dir, "com.example.calm.log"))
	for i := range 5 {
		if !strings.Contains(calmText, fmt.Sprintf("calm line %d\n", i)) {
			t.Errorf("calm line %d lost", i)
		}
	}
	// Rotated files are numbered without gaps and newest first.
	matches, _ := filepath.Glob(filepath.Join(cfg.Dir, "com.example.chatty.log.*"))
	sort.Strings(matches)
	if len(matches) < 2 {
		t.Fatalf("rotated files = %v", matches)
	}
	for i := range matches {
		if _, err := os.Stat(filepath.Join(cfg.Dir, fmt.Sprintf("com.example.chatty.log.%d", i+1))); err != nil {
			t.Fatalf("gap in rotated files: %v", err)
		}
	}
	if first, second := read(t, filepath.Join(cfg.Dir, "com.example.chatty.log.1")), read(t, filepath.Join(cfg.Dir, "com.example.chatty.log.2")); lastLine(first) <= lastLine(second) {
		t.Errorf(".1 is not newer than .2: %q vs %q", lastLine(first), lastLine(second))
	}
	for name, u := range m.Usage().Components {
		if u.DroppedBytes != 0 {
			t.Errorf("%s dropped %d bytes although it could always rotate its own files", name, u.DroppedBytes)
		}
	}
	if u := m.Usage(); u.Components["com.example.chatty"].EvictedBytes == 0 && u.Components["com.example.other"].EvictedBytes == 0 {
		t.Error("two writers at their caps exceed the global budget: something must have been evicted")
	}
}

func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func TestGlobalBudgetTakesOldestFilesOfBiggestUserFirst(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), FileSize: 1000, ComponentCap: 4000, GlobalCap: 6000, MaxLineBytes: 200}
	m := open(t, cfg)
	big, small, newcomer := mustLog(t, m, "big"), mustLog(t, m, "small"), mustLog(t, m, "newcomer")
	line := strings.Repeat("b", 74) // 100-byte records
	for range 35 {
		if err := big.Write(Stdout, line); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		if err := small.Write(Stdout, line); err != nil {
			t.Fatal(err)
		}
	}
	if u := m.Usage(); u.Bytes != 5500 || u.Components["big"].Files != 4 || u.Components["small"].Files != 2 {
		t.Fatalf("setup: %+v", u)
	}
	for range 10 {
		if err := newcomer.Write(Stdout, line); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "big.log.3")); !os.IsNotExist(err) {
		t.Errorf("big.log.3 (oldest file of the biggest user) still there: %v", err)
	}
	for _, f := range []string{"big.log.1", "big.log.2", "big.log", "small.log.1", "small.log", "newcomer.log"} {
		if _, err := os.Stat(filepath.Join(cfg.Dir, f)); err != nil {
			t.Errorf("%s should have been kept: %v", f, err)
		}
	}
	u := m.Usage()
	if u.Components["big"].EvictedBytes != 1000 || u.Components["small"].EvictedBytes != 0 {
		t.Errorf("evicted: big %d, small %d", u.Components["big"].EvictedBytes, u.Components["small"].EvictedBytes)
	}
	if _, total := onDisk(t, cfg.Dir); total > cfg.GlobalCap || total != u.Bytes {
		t.Errorf("disk %d, accounted %d, cap %d", total, u.Bytes, cfg.GlobalCap)
	}
}

func TestDroppedBytesAreCountedAndSaidOnceSpaceIsBack(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), FileSize: 500, ComponentCap: 500, GlobalCap: 1000, MaxLineBytes: 100}
	m := open(t, cfg)
	fill := strings.Repeat("f", 74) // 100-byte records
	for _, name := range []string{"idle1", "idle2"} {
		l := mustLog(t, m, name)
		for range 5 {
			if err := l.Write(Stdout, fill); err != nil {
				t.Fatal(err)
			}
		}
	}
	loud := mustLog(t, m, "loud")
	for i := range 3 {
		if err := loud.Write(Stderr, fmt.Sprintf("lost %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	lost := int64(3 * len(Line{t0, Stderr, "lost 0"}.record()))
	if got := m.Usage().Components["loud"].DroppedBytes; got != lost {
		t.Fatalf("dropped = %d, want %d", got, lost)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "loud.log")); !os.IsNotExist(err) {
		t.Fatalf("loud.log written although the budget was full: %v", err)
	}
	if tail := loud.Tail(0); len(tail) != 3 {
		t.Fatalf("the in-memory tail must keep dropped lines, got %v", tail)
	}

	if err := m.Remove("idle1"); err != nil {
		t.Fatal(err)
	}
	if err := loud.Write(Stdout, "back"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("2026-11-25T10:00:00.123Z [keystone] dropped %d bytes\n2026-11-25T10:00:00.123Z back\n", lost)
	if got := read(t, filepath.Join(cfg.Dir, "loud.log")); got != want {
		t.Fatalf("loud.log = %q, want %q", got, want)
	}
	tail := loud.Tail(2)
	if tail[0].String() != fmt.Sprintf("[keystone] dropped %d bytes", lost) || tail[1].Text != "back" {
		t.Fatalf("tail = %v", tail)
	}
	if err := loud.Write(Stdout, "again"); err != nil {
		t.Fatal(err)
	}
	if strings.Count(read(t, filepath.Join(cfg.Dir, "loud.log")), "dropped") != 1 {
		t.Fatal("the dropped note must be written once")
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "idle1.log")); !os.IsNotExist(err) {
		t.Fatal("Remove left idle1.log")
	}
	if err := mustLog(t, m, "idle2").Write(Stdout, "x"); err != nil {
		t.Fatal(err)
	}
}

func TestReopenAccountsForOldFilesAndTrimsToCaps(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"a.log": 300, "a.log.1": 1000, "a.log.4": 1000, "a.log.7": 1000, "b.log": 200, "notes.txt": 10} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat("z", size)), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Remove(filepath.Join(dir, "notes.txt"))
	m := open(t, Config{Dir: dir, FileSize: 1000, ComponentCap: 2500, GlobalCap: 10000, MaxLineBytes: 100})
	u := m.Usage()
	// a: 300 + 1000 + 1000 (the third rotated file is past the cap).
	if u.Components["a"].Bytes != 2300 || u.Components["a"].Files != 3 || u.Bytes != 2500 {
		t.Fatalf("usage = %+v", u)
	}
	for _, f := range []string{"a.log.1", "a.log.2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("renumbered %s missing: %v", f, err)
		}
	}
	for _, f := range []string{"a.log.3", "a.log.4", "a.log.7"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s should be gone", f)
		}
	}
	if err := mustLog(t, m, "b").Write(Stdout, "more"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "b.log")); !strings.HasPrefix(got, strings.Repeat("z", 200)) || !strings.HasSuffix(got, " more\n") {
		t.Fatalf("b.log was not appended to: %q", got)
	}
}

func TestCaptureSplitsLinesAndTagsStreams(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), FileSize: 10000, MaxLineBytes: 16}
	m := open(t, cfg)
	l := mustLog(t, m, "c")
	in := "one\r\ntwo\n" + strings.Repeat("L", 40) + "\nno newline at end"
	if err := l.Capture(Stderr, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range l.Tail(0) {
		if line.Stream != Stderr {
			t.Fatalf("stream = %v", line.Stream)
		}
		got = append(got, line.Text)
	}
	want := []string{"one", "two", strings.Repeat("L", 16), strings.Repeat("L", 16), strings.Repeat("L", 8), "no newline at end"[:16], "d"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines = %q\nwant    %q", got, want)
	}
	if text := read(t, filepath.Join(cfg.Dir, "c.log")); !strings.HasPrefix(text, "2026-11-25T10:00:00.123Z [stderr] one\n") {
		t.Fatalf("file = %q", text)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(Stdout, "late"); err != ErrClosed {
		t.Fatalf("write after close: %v", err)
	}
	if err := l.Capture(Stdout, strings.NewReader("a\nb\n")); err != ErrClosed {
		t.Fatalf("capture after close must drain and report ErrClosed, got %v", err)
	}
}

func TestTailAndFollow(t *testing.T) {
	m := open(t, Config{TailLines: 5})
	l := mustLog(t, m, "f")
	for i := range 8 {
		_ = l.Write(Stdout, fmt.Sprint(i))
	}
	if got := texts(l.Tail(3)); got != "5 6 7" {
		t.Fatalf("tail 3 = %s", got)
	}
	if got := texts(l.Tail(0)); got != "3 4 5 6 7" {
		t.Fatalf("tail all = %s (ring of 5)", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ch := l.Follow(ctx, 2)
	_ = l.Write(Stderr, "live")
	var got []string
	for range 3 {
		got = append(got, (<-ch).String())
	}
	if strings.Join(got, ",") != "6,7,[stderr] live" {
		t.Fatalf("follow = %v", got)
	}
	cancel()
	if _, open := <-waitClosed(t, ch); open {
		t.Fatal("channel not closed after cancel")
	}

	// A follower that does not read misses lines and is told how many.
	slow := l.Follow(context.Background(), -1)
	drain := len(l.Tail(0))
	for i := range followBuffer + 10 {
		_ = l.Write(Stdout, fmt.Sprint("x", i))
	}
	for range drain + followBuffer {
		<-slow
	}
	_ = l.Write(Stdout, "after")
	if note := <-slow; note.String() != "[keystone] follower missed 10 lines" {
		t.Fatalf("note = %q", note.String())
	}
	if next := <-slow; next.Text != "after" {
		t.Fatalf("next = %q", next.Text)
	}
	_ = m.Close()
	if _, open := <-waitClosed(t, slow); open {
		t.Fatal("Close must end followers")
	}
}

// waitClosed returns ch once it is closed (draining it), failing after a deadline.
func waitClosed(t *testing.T, ch <-chan Line) <-chan Line {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return ch
			}
		case <-deadline:
			t.Fatal("channel still open")
		}
	}
}

func texts(lines []Line) string {
	var s []string
	for _, l := range lines {
		s = append(s, l.Text)
	}
	return strings.Join(s, " ")
}

func TestConfigIsValidated(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Dir: "x", FileSize: 100, ComponentCap: 50},
		{Dir: "x", FileSize: 100, ComponentCap: 100, GlobalCap: 99},
		{Dir: "x", FileSize: 60, MaxLineBytes: 50},
	} {
		if _, err := Open(cfg); err == nil {
			t.Errorf("Open(%+v) accepted", cfg)
		}
	}
	m := open(t, Config{})
	for _, bad := range []string{"", ".hidden", "a/b"} {
		if _, err := m.Log(bad); err == nil {
			t.Errorf("Log(%q) accepted", bad)
		}
	}
}
