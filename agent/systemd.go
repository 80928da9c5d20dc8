package agent

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// systemd speaks the sd_notify protocol when the agent runs as a
// Type=notify unit: READY=1 once the API answers, WATCHDOG=1 at half the
// unit's WatchdogSec while the agent is healthy, STOPPING=1 at shutdown.
// Without NOTIFY_SOCKET every call does nothing.
type systemd struct {
	log *slog.Logger
}

func (s systemd) notify(state string) {
	sent, err := daemon.SdNotify(false, state)
	switch {
	case err != nil:
		s.log.Warn("sd_notify failed", "state", state, "err", err)
	case sent:
		s.log.Debug("sd_notify", "state", state)
	}
}

// ready tells systemd the agent is up.
func (s systemd) ready() { s.notify(daemon.SdNotifyReady) }

// reloading tells systemd the agent is re-executing itself in place; the
// next image sends READY=1 when it is up. It also pings the watchdog:
// systemd keeps the watchdog running across a reload, and the next image
// pings only once it runs.
func (s systemd) reloading() {
	s.notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10) + "\nWATCHDOG=1")
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// stopping tells systemd the agent is shutting down.
func (s systemd) stopping() { s.notify(daemon.SdNotifyStopping) }

// watchdog pings systemd at half of WATCHDOG_USEC until ctx ends, but only
// while healthy answers nil: a wedged agent stops pinging and systemd
// restarts it. Without a watchdog configured it returns at once.
func (s systemd) watchdog(ctx context.Context, healthy func(context.Context) error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		s.log.Warn("systemd watchdog settings unreadable; not pinging", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	period := interval / 2
	s.log.Info("systemd watchdog enabled", "ping_every", period.String())
	t := time.NewTicker(period)
	defer t.Stop()
	// The first ping goes out at once: after a re-execution in place the
	// watchdog has been running since the previous image's last ping.
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		hctx, cancel := context.WithTimeout(ctx, period)
		err := healthy(hctx)
		cancel()
		if err != nil {
			s.log.Warn("unhealthy; withholding the watchdog ping", "err", err)
			continue
		}
		s.notify(daemon.SdNotifyWatchdog)
	}
}
