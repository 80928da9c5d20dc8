package logs

import (
	"fmt"
	"time"
)

// Stream says where a line came from.
type Stream uint8

const (
	Stdout Stream = iota + 1 // the process's standard output
	Stderr                   // the process's standard error
	Agent                    // a note KeyStone adds (dropped bytes, a failed shutdown script)
)

// String names the stream: "stdout", "stderr" or "keystone".
func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	case Agent:
		return "keystone"
	}
	return fmt.Sprintf("stream(%d)", uint8(s))
}

// Line is one line of a component's output, without its newline.
type Line struct {
	Time   time.Time
	Stream Stream
	Text   string
}

// String is the line as a person reads it: standard output as is, other
// streams tagged ("[stderr] boom", "[keystone] dropped 512 bytes").
func (l Line) String() string {
	if l.Stream == Stdout {
		return l.Text
	}
	return "[" + l.Stream.String() + "] " + l.Text
}

// timeLayout stamps lines on disk: UTC, milliseconds, fixed width.
const timeLayout = "2006-01-02T15:04:05.000Z"

// record is the line as stored on disk: "<time> <String()>\n".
func (l Line) record() []byte {
	b := make([]byte, 0, len(timeLayout)+len(l.Text)+16)
	b = l.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, ' ')
	b = append(b, l.String()...)
	return append(b, '\n')
}
