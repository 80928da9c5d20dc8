package agent

import (
	"runtime/debug"
)

// DefaultGOGC is the garbage collector's target the agent runs with when
// the environment sets no GOGC: the heap may grow to 1.5 times what is
// live between collections instead of Go's default 2 times. The agent's
// live heap is small (about 3 MiB, plus some KiB a component) and
// collections of it are short, so on a small device the memory matters
// more than the CPU (see docs/operations.md).
const DefaultGOGC = 50

// TuneMemory applies the agent's memory defaults to the Go runtime, each
// only where the environment does not set its own: GOGC (DefaultGOGC).
// GOMEMLIMIT has no default (no limit); set it in the environment to give
// the agent a soft limit. getenv is os.Getenv. It reports whether the
// environment left both to the agent: only then may the agent pause the
// collector while idle (Options.PauseIdleGC).
func TuneMemory(getenv func(string) string) (defaults bool) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGOGC)
	}
	return getenv("GOGC") == "" && getenv("GOMEMLIMIT") == ""
}
