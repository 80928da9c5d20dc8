package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/keystone-edge/keystone/agent/config"
)

const configUsage = `Usage:
  keystone-agent config check --config FILE

Check the agent configuration FILE as the agent would read it at start,
and list every problem found, one per line, as FILE:LINE:COL: KEY: MESSAGE
(unknown keys, values of the wrong type or out of range, missing required
keys). Files the configuration names are not opened: keystonectl doctor
checks them on the device.

Exit codes:
  0  the configuration is valid
  1  problems were found (listed on stdout), or FILE could not be read
  2  usage error
`

// configCmd runs "keystone-agent config ...".
func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, configUsage)
			return exitOK
		}
		fmt.Fprint(stderr, "keystone-agent config: want: config check --config FILE\n"+configUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("keystone-agent config check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, configUsage)
			return exitOK
		}
		fmt.Fprintf(stderr, "keystone-agent config check: %v\ntry: keystone-agent config help\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 || *path == "" {
		fmt.Fprint(stderr, "keystone-agent config check: --config FILE is required (and nothing else)\ntry: keystone-agent config help\n")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	var list config.ErrorList
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			fmt.Fprintln(stdout, e.Error())
		}
		fmt.Fprintf(stderr, "keystone-agent config check: %d problem(s) in %s\n", len(list), *path)
		return exitError
	case err != nil:
		fmt.Fprintf(stderr, "keystone-agent config check: %v\n", err)
		return exitError
	}
	mode := "local-only"
	if cfg.MQTT.Broker != "" {
		mode = "fleet broker " + cfg.MQTT.Broker
	}
	fmt.Fprintf(stdout, "%s: valid (device %s, %s)\n", *path, cfg.DeviceID, mode)
	return exitOK
}
