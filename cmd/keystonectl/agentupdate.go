package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/api"
)

func newAgentCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("agent", "The agent itself: update it to another release",
		`Act on the agent itself rather than its components. agent update replaces the
running agent with another release from the component repository, in place:
no component is stopped or restarted, and a release that does not become
healthy is reverted by the agent on its own.`,
		`  keystonectl agent update 1.4.0 --wait`)
	cmd.AddCommand(newAgentUpdateCmd(opts))
	return cmd
}

// agentUpdatePoll is how often --wait asks the agent; it re-executes
// itself during an update, so the socket is briefly away.
const agentUpdatePoll = 250 * time.Millisecond

func newAgentUpdateCmd(opts *options) *cobra.Command {
	var (
		w             waitFlags
		healthTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "update VERSION [--wait] [--timeout D] [--health-timeout D]",
		Short: "Update the agent to release VERSION from the component repository",
		Long: `Ask the agent to update itself to release VERSION. The agent fetches the
release from its component repository (signed like any component), installs it
beside the running one under root_dir/releases/, and executes it in place:
every component keeps running, with the same pid, through the update. The new
release is committed (root_dir/current switched to it) only once it is
healthy; if it crashes, hangs, cannot be executed or is not healthy within
--health-timeout, the agent goes back to the previous release by itself and
the update ends FAILED with rolled_back.

The command returns once the agent has taken the request; with --wait it
follows the update until it ends.

Exit codes:
  0  the update was taken (with --wait: it was committed)
  1  it was refused (an update in progress, no repository configured), with
     --wait it failed or the wait timed out, or the agent could not be asked
  2  usage error`,
		Example: `  keystonectl agent update 1.4.0 --wait
  keystonectl agent update 1.4.0 --health-timeout 5m`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return flagErrorf(cmd, "%s takes one argument: VERSION, the agent release", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := w.check(cmd); err != nil {
				return err
			}
			if healthTimeout < 0 {
				return flagErrorf(cmd, "--health-timeout must be positive, got %s", healthTimeout)
			}
			req := api.AgentUpdateRequest{Version: args[0]}
			if healthTimeout > 0 {
				req.Timeout = healthTimeout.String()
			}
			c := opts.client()
			defer c.Close()
			u, err := c.UpdateAgent(cmd.Context(), req)
			if err != nil {
				return agentError("agent update", err)
			}
			if w.wait && !u.Finished {
				if u, err = waitForAgentUpdate(cmd.Context(), c, u.ID, w.timeout); err != nil {
					return err
				}
			}
			if err := opts.render(u, agentUpdateTable(u)); err != nil {
				return err
			}
			if w.wait && u.Phase != "committed" {
				return &SilentError{Code: exitError}
			}
			return nil
		},
	}
	w.register(cmd)
	cmd.Flags().DurationVar(&healthTimeout, "health-timeout", 0, "how long the new release has to become healthy before the agent goes back (`D`; default 2m)")
	return cmd
}

func agentUpdateTable(u api.AgentUpdate) table {
	rows := [][]string{
		{"UPDATE", u.ID},
		{"FROM", u.From},
		{"TO", u.To},
		{"PHASE", u.Phase},
		{"ROLLED BACK", fmt.Sprint(u.RolledBack)},
		{"RUNNING", u.Running},
	}
	if u.ErrorCode != "" {
		rows = append(rows, []string{"ERROR CODE", u.ErrorCode})
	}
	if u.Detail != "" {
		rows = append(rows, []string{"DETAIL", u.Detail})
	}
	return table{rows: rows}
}

// waitForAgentUpdate polls until update id has ended. The agent is away
// while it re-executes itself; that is expected, up to unreachableGrace.
func waitForAgentUpdate(ctx context.Context, c *api.Client, id string, timeout time.Duration) (api.AgentUpdate, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var (
		last             api.AgentUpdate
		unreachableSince time.Time
	)
	for {
		u, err := c.AgentUpdate(ctx)
		var apiErr *api.Error
		switch {
		case err == nil && u.ID == id:
			last, unreachableSince = u, time.Time{}
			if u.Finished {
				return u, nil
			}
		case err == nil:
			return u, fmt.Errorf("agent update %s was replaced by %s", id, u.ID)
		case errors.As(err, &apiErr):
			return last, agentError("agent update", err)
		case unreachableSince.IsZero():
			unreachableSince = time.Now()
		case time.Since(unreachableSince) > unreachableGrace:
			return last, fmt.Errorf("agent update %s: the agent has not answered for %s: %w", id, unreachableGrace, err)
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("agent update %s: %w (the update goes on in the agent)", id, errWaitTimeout)
		case <-time.After(agentUpdatePoll):
		}
	}
}
