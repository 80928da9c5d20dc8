package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// followBuffer is how many live lines a follower may lag behind before it
// starts missing lines.
const followBuffer = 256

// Log is one component's log. Its methods are safe for concurrent use;
// lines from concurrent writers are kept whole.
type Log struct {
	m    *Manager
	name string

	// Guarded by m.mu.
	f           *os.File // current file, opened on first write
	active      int64    // bytes in <name>.log
	rotated     []int64  // sizes of <name>.log.1 (newest) .. .N (oldest)
	ring        ring
	subs        map[*follower]struct{}
	removed     bool
	pendingDrop int64 // dropped since the last "dropped N bytes" note
	dropped     int64 // dropped, ever
	evicted     int64 // deleted to keep the global budget, ever
}

// follower is one Follow call's channel.
type follower struct {
	ch     chan Line
	missed int
	stop   func() bool // detaches the context callback
}

// Component is the component the log belongs to.
func (l *Log) Component() string { return l.name }

// Write adds one line from stream. Text longer than the configured maximum
// is split; a trailing newline is not expected. The line always reaches the
// in-memory tail and followers; on disk it may be dropped for lack of space
// (counted, and said in the log once space is back). The error reports a
// failed file operation, or ErrClosed after Close or Remove.
func (l *Log) Write(stream Stream, text string) error {
	limit := l.m.cfg.MaxLineBytes
	for len(text) > limit {
		if err := l.writeLine(stream, text[:limit]); err != nil {
			return err
		}
		text = text[limit:]
	}
	return l.writeLine(stream, text)
}

func (l *Log) writeLine(stream Stream, text string) error {
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	line := Line{Time: m.cfg.Now(), Stream: stream, Text: text}
	if m.closed || l.removed {
		l.publish(line)
		return ErrClosed
	}
	if l.pendingDrop > 0 {
		note := Line{Time: line.Time, Stream: Agent, Text: "dropped " + strconv.FormatInt(l.pendingDrop, 10) + " bytes"}
		ok, err := l.store(note)
		if err != nil {
			l.publish(line)
			return err
		}
		if ok {
			l.pendingDrop = 0
			l.publish(note)
		}
	}
	l.publish(line)
	ok, err := l.store(line)
	if err != nil {
		return err
	}
	if !ok {
		n := int64(len(line.record()))
		l.pendingDrop += n
		l.dropped += n
	}
	return nil
}

// store writes the line's record to the current file if room can be made.
func (l *Log) store(line Line) (bool, error) {
	rec := line.record()
	ok, err := l.m.makeRoom(l, int64(len(rec)))
	if err != nil || !ok {
		return false, err
	}
	if l.f == nil {
		f, err := os.OpenFile(l.path(0), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return false, fmt.Errorf("log of %s: %w", l.name, err)
		}
		l.f = f
	}
	n, err := l.f.Write(rec)
	l.active += int64(n)
	l.m.used += int64(n)
	if err != nil {
		return false, fmt.Errorf("log of %s: %w", l.name, err)
	}
	return true, nil
}

// publish puts the line in the tail and offers it to every follower.
func (l *Log) publish(line Line) {
	l.ring.push(line)
	for f := range l.subs {
		if f.missed > 0 {
			note := Line{Time: line.Time, Stream: Agent, Text: "follower missed " + strconv.Itoa(f.missed) + " lines"}
			select {
			case f.ch <- note:
				f.missed = 0
			default:
				f.missed++
				continue
			}
		}
		select {
		case f.ch <- line:
		default:
			f.missed++
		}
	}
}

// Capture copies r into the log line by line, tagged with stream, until r
// ends (EOF, or the read end is closed). It keeps reading when writing
// fails, so that the writer on the other end of a pipe never blocks on a
// full log, and returns the first write error or a read error.
func (l *Log) Capture(stream Stream, r io.Reader) error {
	// The line buffer (MaxLineBytes) is made once the first output comes:
	// many components write little or nothing, and a capture waiting on a
	// quiet pipe then holds only this small head.
	var head [128]byte
	n, err := r.Read(head[:])
	var rest io.Reader = r
	switch {
	case err == nil:
	case n == 0:
		return l.readEnd(stream, nil, err)
	default:
		rest = errReader{err}
	}
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(head[:n]), rest), l.m.cfg.MaxLineBytes)
	var first error
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			text := b
			if text[len(text)-1] == '\n' {
				text = text[:len(text)-1]
				if len(text) > 0 && text[len(text)-1] == '\r' {
					text = text[:len(text)-1]
				}
			}
			if werr := l.Write(stream, string(text)); werr != nil && first == nil {
				first = werr
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return l.readEnd(stream, first, err)
		}
	}
}

// readEnd is what Capture returns once reading stopped with err: first
// alone at the end of the output, else with the read error.
func (l *Log) readEnd(stream Stream, first, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
		return first
	}
	return errors.Join(first, fmt.Errorf("read %s of %s: %w", stream, l.name, err))
}

// errReader returns err on every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Tail returns up to n of the most recent lines, oldest first; n <= 0 means
// all that are kept.
func (l *Log) Tail(n int) []Line {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	return l.ring.last(n)
}

// Follow returns a channel that gets the last tail lines (as Tail) and then
// every new line, until ctx ends or the log is closed or removed; then the
// channel is closed. A follower that does not keep up misses lines and gets
// a "[keystone] follower missed N lines" note instead; it never slows the
// writer.
func (l *Log) Follow(ctx context.Context, tail int) <-chan Line {
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	lines := l.ring.last(tail)
	f := &follower{ch: make(chan Line, len(lines)+followBuffer)}
	for _, line := range lines {
		f.ch <- line
	}
	if m.closed || l.removed {
		close(f.ch)
		return f.ch
	}
	l.subs[f] = struct{}{}
	f.stop = context.AfterFunc(ctx, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := l.subs[f]; ok {
			delete(l.subs, f)
			close(f.ch)
		}
	})
	return f.ch
}

// endFollowers closes every follower's channel; m.mu is held.
func (l *Log) endFollowers() {
	for f := range l.subs {
		f.stop()
		delete(l.subs, f)
		close(f.ch)
	}
}

// closeFile closes the current file; m.mu is held.
func (l *Log) closeFile() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("log of %s: %w", l.name, err)
	}
	return nil
}

// total is the bytes of all the component's files; m.mu is held.
func (l *Log) total() int64 {
	t := l.active
	for _, s := range l.rotated {
		t += s
	}
	return t
}
