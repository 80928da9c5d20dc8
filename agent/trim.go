package agent

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keystone-edge/keystone/supervisor"
	"github.com/keystone-edge/keystone/supervisor/events"
	"golang.org/x/sys/unix"
)

// TrimEnv names the environment variable that sets how long the agent
// waits, after start-up and after each deployment, with nothing more
// happening, before it gives back the memory that work used (see trimmer);
// a Go duration, "0" turns trimming off. Unset = DefaultTrimAfter.
const TrimEnv = "KEYSTONE_TRIM_AFTER"

// trimBuffer is the trimmer's subscription: it only needs to see that
// deployments happen, so losing events to a full buffer costs nothing.
const trimBuffer = 16

// DefaultTrimAfter is the quiet time before a trim when TrimEnv is unset.
const DefaultTrimAfter = 10 * time.Second

// TrimAfter reads TrimEnv from getenv: the quiet time before a trim, 0
// for never.
func TrimAfter(getenv func(string) string) (time.Duration, error) {
	v := getenv(TrimEnv)
	if v == "" {
		return DefaultTrimAfter, nil
	}
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 10s, or 0 for never", TrimEnv, v)
	}
	return d, nil
}

// trimmer gives memory back after a burst of work: start-up, a deployment.
// Once the agent has been quiet for after (no deployment event), it runs
// the garbage collector and returns the free heap to the kernel
// (debug.FreeOSMemory), and it has the kernel reclaim the pages of its
// own program that the burst mapped (pageOutExecutable): package
// initialisation, configuration parsing, the migrations, the deployment
// engine. Code that runs again afterwards (a restart, an API call) is
// read back on demand. An idle agent arms no timer: a trim follows work, never time.
//
// With gc set, it also pauses the collector's periodic run while nothing
// happens: Go collects at least every two minutes even when nothing was
// allocated, which wakes every thread of an idle agent and maps the
// collector's code again. After quiet time the collector is paused (a
// soft memory limit stays as the bound, see gcPause); any event of the
// bus or request to the API resumes it.
type trimmer struct {
	after time.Duration
	clock supervisor.Clock
	log   *slog.Logger
	// gc pauses and resumes the collector; nil = never paused.
	gc gcSwitch
	// trim does the work; nil = trimMemory.
	trim func(*slog.Logger)
	// activity is poked by API requests; make it with newTrimmer.
	activity chan struct{}
}

// gcSwitch pauses the garbage collector's periodic runs and resumes them.
type gcSwitch interface {
	pause()
	resume()
}

func newTrimmer(after time.Duration, clock supervisor.Clock, log *slog.Logger, gc gcSwitch) *trimmer {
	t := &trimmer{after: after, clock: clock, log: log, activity: make(chan struct{}, 1)}
	if gc != nil { // a nil *gcPause must not become a non-nil interface
		t.gc = gc
	}
	return t
}

// poke says something happened (an API request): the collector resumes
// until the agent is quiet again. It never blocks.
func (t *trimmer) poke() {
	select {
	case t.activity <- struct{}{}:
	default:
	}
}

// handler pokes t for every request to h.
func (t *trimmer) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.poke()
		h.ServeHTTP(w, r)
	})
}

// run trims after the start and after every burst of deployment events
// from sub, and pauses the collector whenever the agent has been quiet,
// until sub is closed.
func (t *trimmer) run(ctx context.Context, sub <-chan events.Event) {
	trim := t.trim
	if trim == nil {
		trim = trimMemory
	}
	fire := make(chan struct{}, 1)
	var timer supervisor.Timer
	arm := func() {
		if timer != nil {
			timer.Stop()
		}
		timer = t.clock.AfterFunc(t.after, func() {
			select {
			case fire <- struct{}{}:
			default:
			}
		})
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if t.gc != nil {
			t.gc.resume()
		}
	}()
	worked := true // start-up
	arm()
	for {
		select {
		case e, ok := <-sub:
			if !ok {
				return
			}
			if e.Kind == events.KindDeployment || e.Kind == events.KindAgentUpdate {
				worked = true
			} else if t.gc == nil && !worked {
				continue // nothing to pause, nothing to trim
			}
			t.resumeGC()
			arm()
		case <-t.activity:
			if t.gc == nil {
				continue
			}
			t.resumeGC()
			arm()
		case <-fire:
			// Paused first: the trim's paging out comes last, so that as
			// little code as possible runs, and is read again, after it.
			if t.gc != nil {
				t.gc.pause()
			}
			if worked {
				trim(t.log)
				worked = false
			}
		case <-ctx.Done():
			return
		}
	}
}

func (t *trimmer) resumeGC() {
	if t.gc != nil {
		t.gc.resume()
	}
}

// gcPause pauses the collector (GOGC off) under a soft memory limit of
// what the runtime holds at the pause plus idleHeadroom, so that an agent
// that allocates while paused without telling the trimmer still collects
// once it has grown by that much; resume restores the percentage and
// lifts the limit. It is only used where the environment sets neither
// GOGC nor GOMEMLIMIT (TuneMemory).
type gcPause struct {
	percent int
	paused  bool
}

// idleHeadroom is how far the runtime's memory may grow while the
// collector is paused before it collects anyway.
const idleHeadroom = 4 << 20

func (g *gcPause) pause() {
	if g.paused {
		return
	}
	s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	rtmetrics.Read(s)
	held := int64(s[0].Value.Uint64() - s[1].Value.Uint64())
	debug.SetMemoryLimit(held + idleHeadroom)
	g.percent = debug.SetGCPercent(-1)
	g.paused = true
}

func (g *gcPause) resume() {
	if !g.paused {
		return
	}
	debug.SetGCPercent(g.percent)
	debug.SetMemoryLimit(math.MaxInt64)
	g.paused = false
}

// trimMemory returns the free heap to the kernel and pages out the
// executable's read-only mappings.
func trimMemory(log *slog.Logger) {
	start := time.Now()
	// Each collection halves the goroutine stacks that use less than a
	// quarter of theirs; the goroutines of a component start large (at
	// the average size of the start-up's deep stacks) and, blocked in a
	// read or a wait, need little: two collections bring most to 4 KiB.
	runtime.GC()
	debug.FreeOSMemory()
	log.Debug("trimming memory", "took_ms", float64(time.Since(start).Microseconds())/1000)
	if err := pageOutExecutable(); err != nil {
		log.Debug("page out the agent's program", "err", err)
	}
}

// pageOutExecutable asks the kernel to reclaim the pages of this
// program's read-only file mappings (text, read-only data, the function
// tables). Only pages no other process maps are reclaimed; a page touched
// again comes back on demand, from the disk. It needs Linux 5.4 and, for
// pages of a file, CAP_SYS_ADMIN or write access to the file (the agent
// runs as root). Unmapping the pages and leaving them in the page cache
// (MADV_DONTNEED) does not do: the kernel caches the program in large
// folios and maps a whole folio again at the next touch, which brought
// 15 of the 20 MiB back within seconds.
func pageOutExecutable() error {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00c1d000 r-xp 00000000 fd:01 1234 /path/to/keystone-agent
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.Contains(fields[1], "w") {
			continue
		}
		if ino, err := strconv.ParseUint(fields[4], 10, 64); err != nil || ino != st.Ino {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			return fmt.Errorf("madvise %s: %w", fields[0], errno)
		}
	}
	return sc.Err()
}
