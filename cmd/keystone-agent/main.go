// Command keystone-agent is the KeyStone device daemon: it runs the
// components deployed to this device and answers the local API.
//
//	keystone-agent run --config /etc/keystone/agent.toml [--data-dir DIR] [--socket PATH]
//	keystone-agent version
//	keystone-agent config check --config FILE
//	keystone-agent enroll --device-id ID [--key FILE] [--out FILE]
//
// This file holds only flag parsing and main; package agent does the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/keystone-edge/keystone/agent"
	"github.com/keystone-edge/keystone/agent/config"
	"github.com/keystone-edge/keystone/runner"
)

// version is set at build time: -ldflags "-X main.version=1.2.0".
var version = "dev"

// faultEnv names the test hook that makes the agent kill itself with
// SIGKILL right after the deployment checkpoint it names ("<step>:<status>",
// e.g. "stop:started"; see docs/deployments.md) is durable, or at
// agent.FaultProcessStarted, to prove that a crash at that point resumes
// cleanly. Never set in production.
const faultEnv = "KEYSTONE_FAULT_CRASH_AFTER_STEP"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `keystone-agent is the KeyStone device daemon. It runs the signed component
recipes deployed to this device, each through its state machine in dependency
order, and answers keystonectl on a local Unix socket.

Usage:
  keystone-agent run --config FILE [--data-dir DIR] [--socket PATH]
  keystone-agent version
  keystone-agent config check --config FILE
  keystone-agent enroll --device-id ID [--key FILE] [--out FILE]
  keystone-agent help

run starts the daemon in the foreground and runs until SIGTERM or SIGINT
(Ctrl-C), then stops every component (dependents first), closes its database
and exits 0. A second Ctrl-C exits at once. Logs are JSON lines on stderr.
Under systemd (Type=notify) it reports readiness and, with WatchdogSec=,
pings the watchdog while healthy.

SIGHUP (systemctl reload) re-executes the agent in place: it hands its running
components over to the release root_dir/current names (or to its own program
when there is none) without stopping or restarting any of them; the process
keeps its pid. See docs/self-update.md.

version prints the version, the commit and the build date. config check
lists every problem of a configuration file (exit 1 when there is one).
enroll makes this device's key and prints a certificate signing request for
it (see keystone-agent enroll --help).

Options of run:
  --config FILE    the agent configuration, agent.toml (required; see
                   docs/configuration.md)
  --data-dir DIR   use DIR instead of data_dir from the file
  --socket PATH    serve the local API on PATH instead of api.socket

Exit codes:
  0  clean shutdown (or help, or version)
  1  the agent could not start or failed while running; the reason is on stderr
  2  usage error

Examples:
  keystone-agent run --config /etc/keystone/agent.toml
  keystone-agent run --config ./demo/agent.toml --socket ./demo/agent.sock
`

func main() {
	// The runner re-executes this binary as the shim between fork and exec
	// of every component process; that must come before anything else.
	if runner.IsShim(os.Args) {
		runner.ShimMain()
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runAgent(args[1:], stderr)
	case "version", "--version":
		return printVersion(stdout)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "enroll":
		return enrollCmd(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "keystone-agent: unknown command %q\ntry: keystone-agent help\n", args[0])
		return exitUsage
	}
}

func runAgent(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("keystone-agent run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "")
	dataDir := fs.String("data-dir", "", "")
	socket := fs.String("socket", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "keystone-agent run: %v\ntry: keystone-agent help\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keystone-agent run: unexpected argument %q\ntry: keystone-agent help\n", fs.Arg(0))
		return exitUsage
	}
	if *configPath == "" {
		fmt.Fprint(stderr, "keystone-agent run: --config FILE is required\ntry: keystone-agent help\n")
		return exitUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "keystone-agent: %v\n", err)
		return exitError
	}
	overrides := []struct {
		flag  string
		field *string
	}{{*dataDir, &cfg.DataDir}, {*socket, &cfg.API.Socket}}
	for _, o := range overrides {
		if o.flag == "" {
			continue
		}
		abs, err := filepath.Abs(o.flag)
		if err != nil {
			fmt.Fprintf(stderr, "keystone-agent: %v\n", err)
			return exitError
		}
		*o.field = abs
	}

	trimAfter, err := agent.TrimAfter(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "keystone-agent: %v\n", err)
		return exitUsage
	}
	pauseIdleGC := agent.TuneMemory(os.Getenv)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal ends the process at once

	handed, err := agent.TakeHandOver()
	if err != nil {
		fmt.Fprintf(stderr, "keystone-agent: %v; starting without it (its components are stopped as leftovers)\n", err)
	}
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			// Like sshd -t: a configuration the next image could not load
			// would leave the components without an agent.
			if _, err := config.Load(*configPath); err != nil {
				fmt.Fprintf(stderr, "keystone-agent: reload refused, the configuration does not load: %v\n", err)
				continue
			}
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()

	opts := agent.Options{Version: version, Stderr: stderr, HandedOver: handed, Reload: reload, TrimAfter: trimAfter, PauseIdleGC: pauseIdleGC}
	if step := os.Getenv(faultEnv); step != "" {
		opts.FaultHook = func(s string) {
			if s == step {
				fmt.Fprintf(stderr, "keystone-agent: %s=%s: killing myself after that step\n", faultEnv, step)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // SIGKILL is on its way
			}
		}
	}
	err = agent.Run(ctx, cfg, opts)
	var h *agent.HandOver
	if errors.As(err, &h) {
		signal.Stop(hup)
		err = h.Exec(os.Args[1:], os.Environ()) // returns only if no image could be exec'd
		fmt.Fprintf(stderr, "keystone-agent: %v\n", err)
		return exitError
	}
	if err != nil {
		fmt.Fprintf(stderr, "keystone-agent: %v\n", err)
		return exitError
	}
	return exitOK
}
