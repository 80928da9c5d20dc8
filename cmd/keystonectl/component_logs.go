package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/api"
)

func newComponentLogsCmd(opts *options) *cobra.Command {
	var (
		follow bool
		tail   int
	)
	cmd := &cobra.Command{
		Use:   "logs NAME [-f] [--tail N]",
		Short: "Print a component's output",
		Long: `Print the most recent lines a component wrote to stdout and stderr, as the
agent keeps them, oldest first. With -f, keep printing new lines as they
come until interrupted (Ctrl-C), which ends the command successfully.

Lines are printed as the component wrote them; notes the agent added (such
as "[keystone] dropped N bytes") are among them. With -o json each line is
one JSON object on its own line, as the agent sends it: {ts, stream, text},
stream being stdout, stderr or keystone.

Exit codes:
  0  the lines were printed (or following was interrupted)
  1  there is no such component, or the agent could not be asked
  2  usage error`,
		Example: `  keystonectl component logs com.example.hello
  keystonectl component logs --tail 200 com.example.hello
  keystonectl component logs -f com.example.hello
  keystonectl -o json component logs com.example.hello`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 0 {
				return flagErrorf(cmd, "--tail must be 0 or more, got %d", tail)
			}
			ctx := cmd.Context()
			c := opts.client()
			defer c.Close()
			lines, err := c.Logs(ctx, args[0], api.LogsOptions{Tail: tail, Follow: follow})
			if err != nil {
				return componentError("component logs", args[0], err)
			}
			defer lines.Close()
			enc := json.NewEncoder(opts.Out)
			enc.SetEscapeHTML(false)
			for {
				l, err := lines.Next()
				switch {
				case errors.Is(err, io.EOF):
					return nil
				case err != nil && ctx.Err() != nil:
					return nil // interrupted: the normal way to stop following
				case err != nil:
					return fmt.Errorf("logs of %s: %w", args[0], err)
				}
				if opts.Output == formatJSON {
					err = enc.Encode(l)
				} else {
					_, err = fmt.Fprintln(opts.Out, l.Text)
				}
				if err != nil {
					return fmt.Errorf("write logs: %w", err)
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVar(&tail, "tail", 0, "print the last `N` lines first (0: the agent's default)")
	return cmd
}
