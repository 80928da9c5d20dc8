package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/api"
)

func newEventsCmd(opts *options) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "events [--follow]",
		Short: "Print the agent's events: state changes, deployment progress, warnings",
		Long: `Print the events the agent keeps, oldest first: every component state change
(with its version and reason), every deployment step, warnings (a limit the
host cannot enforce, a dropped log line) and plugin runs that start or stop
failing. With --follow, print new events as they happen until interrupted
(Ctrl-C), which ends the command successfully.

One event a line: time, kind, then what it is about:
  12:04:05  transition  com.example.hello 1.2.0  RUNNING -> ERRORED  exited with status 1: …
  12:04:06  deployment  rollout-42  rollback:started  …

With -o json each event is one JSON object on its own line, as the agent
sends it: {ts, kind, component, from, to, reason, deployment, step, detail}.

Exit codes:
  0  the events were printed (or following was interrupted)
  1  the agent could not be asked
  2  usage error`,
		Example: `  keystonectl events
  keystonectl events --follow
  keystonectl -o json events --follow | jq 'select(.kind == "transition")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c := opts.client()
			defer c.Close()
			stream, err := c.Events(ctx, follow)
			if err != nil {
				return agentError("events", err)
			}
			defer stream.Close()
			enc := json.NewEncoder(opts.Out)
			enc.SetEscapeHTML(false)
			for {
				e, err := stream.Next()
				switch {
				case errors.Is(err, io.EOF):
					return nil
				case err != nil && ctx.Err() != nil:
					return nil // interrupted: the normal way to stop following
				case err != nil:
					return fmt.Errorf("events: %w", err)
				}
				if opts.Output == formatJSON {
					err = enc.Encode(e)
				} else {
					_, err = fmt.Fprintln(opts.Out, terminalSafe(eventLine(e), false))
				}
				if err != nil {
					return fmt.Errorf("write events: %w", err)
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	return cmd
}

// eventLine is one event for people: local time, kind, subject, change and
// reason, separated by two spaces.
func eventLine(e api.Event) string {
	parts := []string{e.At.Local().Format("2006-01-02 15:04:05"), e.Kind}
	subject := e.Component
	if v := e.Detail["version"]; v != "" && subject != "" {
		subject += " " + v
	}
	if e.Deployment != "" {
		subject = strings.TrimSpace(e.Deployment + " " + subject)
	}
	if subject != "" {
		parts = append(parts, subject)
	}
	switch {
	case e.From != "" || e.To != "":
		parts = append(parts, orDash(e.From)+" -> "+orDash(e.To))
	case e.Step != "":
		parts = append(parts, e.Step)
	}
	if e.Reason != "" {
		parts = append(parts, e.Reason)
	}
	if e.Dropped > 0 {
		parts = append(parts, fmt.Sprintf("(%d earlier events lost: the reader fell behind)", e.Dropped))
	}
	return strings.Join(parts, "  ")
}
