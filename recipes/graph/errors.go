package graph

import (
	"errors"
	"strconv"
	"strings"
)

// Kinds of resolution problems. A *Problem wraps exactly one of them, so
// callers branch with errors.Is(err, graph.ErrCycle) on a *ResolveError.
var (
	// ErrMissing: a component is needed but no recipe of it is on offer.
	ErrMissing = errors.New("graph: missing dependency")
	// ErrConflict: no offered version satisfies every range pointing at a
	// component, or a root's pinned version violates a dependent's range.
	ErrConflict = errors.New("graph: version conflict")
	// ErrCycle: components need each other in a loop.
	ErrCycle = errors.New("graph: dependency cycle")
	// ErrInvalid: the input itself is malformed (a bad version or range, a
	// duplicate root or recipe, an unknown dependency type).
	ErrInvalid = errors.New("graph: invalid input")
)

// Problem is one reason a set of components cannot be resolved.
type Problem struct {
	// Kind is ErrMissing, ErrConflict, ErrCycle or ErrInvalid.
	Kind error
	// Components names every component involved. For a cycle they are its
	// members in dependency order, starting with the smallest name.
	Components []string
	// Message is the full human-readable description, e.g.
	// "dependency cycle: a -> b -> c -> a".
	Message string
}

// Error returns the problem's message.
func (p *Problem) Error() string { return p.Message }

// Unwrap returns the problem's kind.
func (p *Problem) Unwrap() error { return p.Kind }

// ResolveError lists every problem Resolve found, not only the first.
type ResolveError struct {
	Problems []*Problem // never empty
}

// Error returns the single problem's message, or a count followed by one
// problem a line.
func (e *ResolveError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].Message
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(e.Problems)))
	b.WriteString(" dependency problems:")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// Unwrap returns the problems, so errors.Is and errors.As see each of them.
func (e *ResolveError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// kindRank orders problems in a ResolveError: input errors first, cycles last.
func kindRank(k error) int {
	switch k {
	case ErrInvalid:
		return 0
	case ErrMissing:
		return 1
	case ErrConflict:
		return 2
	default:
		return 3
	}
}
