package agent

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
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
// (debug.FreeOSMemory), and it drops the pages of its own program that
// the burst mapped (madvise MADV_PAGEOUT on the read-only mappings of the
// executable): package initialisation, configuration parsing, the
// migrations, the deployment engine. Code that runs again afterwards (a
// restart, an API call) is faulted back in from the page cache or the
// disk. An idle agent arms no timer: a trim follows work, never time.
type trimmer struct {
	after time.Duration
	clock supervisor.Clock
	log   *slog.Logger
	// trim does the work; nil = trimMemory.
	trim func(*slog.Logger)
}

// run trims after the start and after every burst of deployment events
// from sub, until sub is closed.
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
	}()
	arm()
	for {
		select {
		case e, ok := <-sub:
			if !ok {
				return
			}
			if e.Kind == events.KindDeployment || e.Kind == events.KindAgentUpdate {
				arm()
			}
		case <-fire:
			trim(t.log)
		case <-ctx.Done():
			return
		}
	}
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
	n, err := pageOutExecutable()
	if err != nil {
		log.Debug("page out the agent's program", "err", err)
	}
	log.Debug("memory trimmed", "paged_out_bytes", n, "took_ms", float64(time.Since(start).Microseconds())/1000)
}

// pageOutExecutable asks the kernel to reclaim the pages of this
// program's read-only file mappings (text, read-only data, the function
// tables), and returns how many bytes it asked about. Only pages no other
// process maps are reclaimed; a page touched again comes back on demand.
// It needs Linux 5.4 and, for pages of a file, CAP_SYS_ADMIN or write
// access to the file (the agent runs as root).
func pageOutExecutable() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
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
			return total, fmt.Errorf("madvise %s: %w", fields[0], errno)
		}
		total += int64(end - start)
	}
	return total, sc.Err()
}
