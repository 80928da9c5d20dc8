package logs

import "bytes"

// Splitter is Capture turned inside out, for a caller that reads the
// output itself (one goroutine polling many pipes) and pushes what it read:
// Write takes the bytes as they come, writes every whole line to the log
// and keeps a partial one until its newline comes; Flush writes the
// partial line as a line of its own, at the end of the output or when
// reading stops. The lines are exactly those Capture makes of the same
// bytes: a line longer than MaxLineBytes is cut into pieces of that size,
// the newline and a carriage return before it are trimmed.
//
// A Splitter holds memory only while it has a partial line. It is not
// safe for concurrent use; the zero value is not usable (see
// Log.Splitter).
type Splitter struct {
	log     *Log
	stream  Stream
	partial []byte // the start of a line whose newline has not come; nil when none
}

// Splitter returns a Splitter that writes lines of stream to the log.
func (l *Log) Splitter(stream Stream) Splitter {
	return Splitter{log: l, stream: stream}
}

// chunkBytes is the most a line may hold, newline included, before it is
// cut: MaxLineBytes, but no less than the 16 bytes of bufio's smallest
// buffer, which Capture reads through (Write cuts such a piece again).
func (s *Splitter) chunkBytes() int { return max(s.log.m.cfg.MaxLineBytes, 16) }

// Write writes every line b completes and keeps the rest. It goes on
// after a failed log write, so that the output is consumed all the same,
// and returns the first error.
func (s *Splitter) Write(b []byte) error {
	size := s.chunkBytes()
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for len(b) > 0 {
		room := size - len(s.partial)
		if i := bytes.IndexByte(b[:min(room, len(b))], '\n'); i >= 0 {
			keep(s.line(b[:i+1]))
			b = b[i+1:]
			continue
		}
		if len(b) >= room {
			keep(s.line(b[:room]))
			b = b[room:]
			continue
		}
		// Too little for a whole line: kept until more comes.
		s.partial = append(s.partial, b...)
		break
	}
	return first
}

// Flush writes the partial line, if any, as a line, as Capture does with
// what it holds when reading ends.
func (s *Splitter) Flush() error {
	if len(s.partial) == 0 {
		return nil
	}
	return s.line(nil)
}

// Partial reports whether a partial line is kept.
func (s *Splitter) Partial() bool { return len(s.partial) > 0 }

// line writes the partial line followed by end as one line and forgets the
// partial line. A trailing newline, and a carriage return before it, are
// trimmed.
func (s *Splitter) line(end []byte) error {
	text := end
	if len(s.partial) > 0 {
		text = append(s.partial, end...)
		s.partial = nil
	}
	if n := len(text); n > 0 && text[n-1] == '\n' {
		text = text[:n-1]
		if n := len(text); n > 0 && text[n-1] == '\r' {
			text = text[:n-1]
		}
	}
	return s.log.Write(s.stream, string(text))
}
