package svcmgr_test

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// fakeEnv selects the fake service's behaviour; fakeGen counts its
// executions in place.
const (
	fakeEnv = "SVCMGR_FAKE"
	fakeGen = "SVCMGR_FAKE_GEN"
)

// TestMain runs the test binary as the fake service when fakeEnv is set.
func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fake(mode))
	}
	os.Exit(m.Run())
}

// fake is a small service that speaks sd_notify with go-systemd's daemon
// package, as the agent does. Every mode but never-ready, orphan, sender
// and successor sends READY=1 with STATUS=gen=<executions in place>
// wd=<µs from SdWatchdogEnabled> (so that a test sees whether
// WATCHDOG_PID matched) and then acts by mode:
//
//	serve      pings the watchdog at half its period; on SIGHUP sends
//	           RELOADING=1 with MONOTONIC_USEC and execs itself in place
//	           (the new image sends READY=1 again); on SIGTERM sends
//	           STOPPING=1 and exits 0
//	deaf       as serve, but ignores SIGHUP
//	hang       never pings and ignores SIGABRT and SIGTERM
//	trigger    sends WATCHDOG=trigger, then hangs as hang does
//	exit1      exits 1
//	segv       dies of SIGSEGV
//	child      as serve, after starting an orphan child: STATUS=child=<pid>
//	foreign    as serve, after a child of its own sent a notification
//	           (STATUS=from-child, WATCHDOG=trigger): STATUS=child-done
//	mainpid    starts a successor, hands over with MAINPID=<pid>, tells it
//	           to go on (SIGUSR1) and exits 0
//	never-ready  sleeps
//
// The helper modes: orphan sleeps; sender sends its notification and
// exits; successor sends STATUS=successor on SIGUSR1 and exits 0 on
// SIGTERM.
func fake(mode string) int {
	notify := func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			fmt.Fprintln(os.Stderr, "fake:", err)
		}
	}
	switch mode {
	case "never-ready", "orphan":
		sleepForever()
	case "sender":
		notify("STATUS=from-child\nWATCHDOG=trigger")
		return 0
	case "successor":
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM)
		os.Stdout.Write([]byte("\n")) // handlers in place
		for sig := range sigs {
			if sig == syscall.SIGTERM {
				return 0
			}
			notify("STATUS=successor")
		}
	}

	gen, _ := strconv.Atoi(os.Getenv(fakeGen))
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 3
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	if mode == "deaf" {
		signal.Ignore(syscall.SIGHUP)
	}
	notify(fmt.Sprintf("READY=1\nSTATUS=gen=%d wd=%d", gen, wd.Microseconds()))
	if wd > 0 && mode != "hang" && mode != "trigger" {
		go func() {
			for range time.Tick(wd / 2) {
				notify(daemon.SdNotifyWatchdog)
			}
		}()
	}

	switch mode {
	case "hang", "trigger":
		signal.Reset()
		signal.Ignore(syscall.SIGABRT, syscall.SIGTERM)
		if mode == "trigger" {
			notify("WATCHDOG=trigger")
		}
		sleepForever()
	case "exit1":
		return 1
	case "segv":
		// Go's runtime turns a SIGSEGV into exit status 2; a shell in our
		// place dies of it.
		err := syscall.Exec("/bin/sh", []string{"sh", "-c", "kill -SEGV $$"}, os.Environ())
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 3
	case "child":
		if gen == 0 {
			pid, err := startSelf("orphan")
			if err != nil {
				return 3
			}
			notify(fmt.Sprintf("STATUS=child=%d", pid))
		}
	case "foreign":
		cmd := selfCommand("sender")
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "fake:", err)
			return 3
		}
		notify("STATUS=child-done")
	case "mainpid":
		cmd := selfCommand("successor")
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 3
		}
		if err := cmd.Start(); err != nil {
			return 3
		}
		if _, err := out.Read(make([]byte, 1)); err != nil {
			return 3
		}
		// Our datagram is queued before any of the successor's.
		notify(fmt.Sprintf("MAINPID=%d", cmd.Process.Pid))
		cmd.Process.Signal(syscall.SIGUSR1)
		return 0
	}

	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			var ts unix.Timespec
			unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
			notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1e3))
			self, err := os.Executable()
			if err != nil {
				return 3
			}
			env := []string{fmt.Sprintf("%s=%d", fakeGen, gen+1)}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, fakeGen+"=") {
					env = append(env, kv)
				}
			}
			err = syscall.Exec(self, os.Args, env)
			fmt.Fprintln(os.Stderr, "fake: exec:", err)
			return 3
		case syscall.SIGTERM:
			notify(daemon.SdNotifyStopping)
			return 0
		}
	}
	return 0
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func selfCommand(mode string) *exec.Cmd {
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fakeEnv+"="+mode)
	return cmd
}

// startSelf starts the test binary in mode and leaves it running: it is
// not waited for, so it outlives us as an orphan.
func startSelf(mode string) (int, error) {
	cmd := selfCommand(mode)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	return cmd.Process.Pid, nil
}
