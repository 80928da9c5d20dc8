package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/api"
)

// defaultWaitTimeout bounds --wait when --timeout is not given.
const defaultWaitTimeout = 10 * time.Minute

// waitFlags are --wait and --timeout, shared by the commands that start or
// stop a deployment.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.wait, "wait", false, "follow the deployment until it ends; exit 0 only if it SUCCEEDED")
	cmd.Flags().DurationVar(&w.timeout, "timeout", defaultWaitTimeout, "with --wait, give up waiting after `D` (the deployment goes on; 0 = no limit)")
}

// check rejects --timeout without --wait and a negative timeout.
func (w *waitFlags) check(cmd *cobra.Command) error {
	if cmd.Flags().Changed("timeout") && !w.wait {
		return flagErrorf(cmd, "--timeout only applies with --wait")
	}
	if w.timeout < 0 {
		return flagErrorf(cmd, "--timeout must be 0 or more, got %s", w.timeout)
	}
	return nil
}

func newDeployApplyCmd(opts *options) *cobra.Command {
	var (
		file    string
		preempt bool
		w       waitFlags
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--wait] [--timeout D] [--preempt]",
		Short: "Apply a deployment manifest",
		Long: `Send the deployment manifest FILE to the agent with every local file it
names: each recipe (a path relative to FILE), the recipe's detached
signature <recipe>.sig when there is one, and the files the recipe
imports. The agent checks the manifest, the recipes, their signatures and
the dependency graph before it accepts anything: a deployment with
problems is refused with every problem listed and nothing changes.

An accepted deployment is queued behind any deployment in progress; with
--preempt the one in progress is canceled (rolled back) instead. The
manifest's deployment.id is the idempotency key: applying an ID the agent
already has answers that deployment and runs nothing again.

Without --wait the command prints the deployment ID and returns. With
--wait it follows the deployment until it ends (showing its progress on a
terminal; quiet with -o json or when stdout is not a terminal), prints the
outcome, and exits 0 only if it SUCCEEDED. --timeout bounds the wait, not
the deployment, which goes on in the agent.

Exit codes:
  0  the deployment was accepted (with --wait: it SUCCEEDED)
  1  it was refused (every problem is listed), with --wait it FAILED or was
     CANCELED, the wait timed out, or the agent could not be asked
  2  usage error`,
		Example: `  keystonectl deploy apply -f deployment.toml
  keystonectl deploy apply -f deployment.toml --wait --timeout 5m
  keystonectl deploy apply -f hotfix.toml --preempt --wait
  keystonectl -o json deploy apply -f deployment.toml --wait`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return flagErrorf(cmd, "-f FILE is required: the deployment manifest")
			}
			if err := w.check(cmd); err != nil {
				return err
			}
			req, err := deploymentRequest(file)
			if err != nil {
				return err
			}
			req.Preempt = preempt
			c := opts.client()
			defer c.Close()
			acc, err := c.Deploy(cmd.Context(), req)
			if err != nil {
				return agentError("deployment "+file+" refused", err)
			}
			return finishSubmit(cmd, opts, c, acc, w)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the deployment manifest `FILE` (required)")
	cmd.Flags().BoolVar(&preempt, "preempt", false, "cancel (and roll back) a deployment in progress instead of queueing behind it")
	w.register(cmd)
	return cmd
}

// finishSubmit ends a command that submitted a deployment: it prints what
// was accepted, or with --wait follows it and prints how it ended.
func finishSubmit(cmd *cobra.Command, opts *options, c *api.Client, acc api.DeploymentAccepted, w waitFlags) error {
	if !w.wait {
		if opts.Output == formatJSON {
			return writeJSON(opts.Out, acc)
		}
		if acc.Existing {
			return writeSections(opts.Out, section{table: table{rows: [][]string{
				{fmt.Sprintf("deployment %s was applied before (%s); nothing new was queued", acc.ID, acc.Status)},
				{"see it with: keystonectl deploy status " + acc.ID},
				{"to apply the manifest again, give it a new [deployment] id (or none, to have one generated)"},
			}}})
		}
		return writeSections(opts.Out,
			section{table: table{rows: [][]string{{"deployment " + acc.ID + " accepted"}}}},
			section{title: "PLAN", table: planTable(acc.Plan)},
			section{table: table{rows: [][]string{{"follow it with: keystonectl deploy status " + acc.ID}}}},
		)
	}
	d, err := waitWithProgress(cmd, opts, c, acc.ID, w.timeout)
	if err != nil {
		return err
	}
	if err := renderDeployment(opts, d); err != nil {
		return err
	}
	return outcome(d)
}

// waitWithProgress waits for deployment id, drawing progress on stderr when
// the output is for a person at a terminal.
func waitWithProgress(cmd *cobra.Command, opts *options, c *api.Client, id string, timeout time.Duration) (api.Deployment, error) {
	var show func(api.Deployment)
	if opts.interactive() {
		p := newProgress(opts.ErrOut, opts.now)
		defer p.clear()
		show = p.show
	}
	return waitForDeployment(cmd.Context(), c, id, timeout, show)
}

func newDeployPlanCmd(opts *options) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plan -f FILE",
		Short: "Show what a deployment manifest would change",
		Long: `Send the deployment manifest FILE and its local files to the agent as a dry
run: the agent checks everything as deploy apply would and answers the plan
(each component's action: add, update, reconfigure, remove, unchanged or
restart, with the versions and the reason) without recording or changing
anything. The plan ends with the command that applies it.

With -o json the answer is the agent's unchanged: {id, plan}.

Exit codes:
  0  the plan was computed (whether or not it changes anything)
  1  the manifest was refused (every problem is listed), or the agent could
     not be asked
  2  usage error`,
		Example: `  keystonectl deploy plan -f deployment.toml
  keystonectl -o json deploy plan -f deployment.toml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return flagErrorf(cmd, "-f FILE is required: the deployment manifest")
			}
			req, err := deploymentRequest(file)
			if err != nil {
				return err
			}
			req.DryRun = true
			c := opts.client()
			defer c.Close()
			acc, err := c.Deploy(cmd.Context(), req)
			if err != nil {
				return agentError("deployment "+file+" refused", err)
			}
			if opts.Output == formatJSON {
				return writeJSON(opts.Out, acc)
			}
			changes := 0
			for _, p := range acc.Plan {
				if p.Action != "unchanged" {
					changes++
				}
			}
			summary := fmt.Sprintf("%d change(s)", changes)
			if changes == 0 {
				summary = "no changes: the device already runs this deployment"
			}
			return writeSections(opts.Out,
				section{table: planTable(acc.Plan), empty: "the deployment has no components"},
				section{table: table{rows: [][]string{{summary}, {"apply it with: " + applyCommand(opts, file)}}}},
			)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the deployment manifest `FILE` (required)")
	return cmd
}

// applyCommand is the exact command line that applies manifest file to the
// same agent.
func applyCommand(opts *options, file string) string {
	parts := []string{rootName}
	if opts.Socket != defaultSocket {
		parts = append(parts, "--socket", shellQuote(opts.Socket))
	}
	parts = append(parts, "deploy", "apply", "-f", shellQuote(file), "--wait")
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
