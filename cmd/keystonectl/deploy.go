package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/api"
)

func newDeployCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("deploy", "Apply deployments to this device and follow them",
		`Apply a deployment manifest to the local agent, see what it would
change, follow its progress, and cancel or roll it back. A deployment is
the complete desired set of components: what it does not list (or need as
a dependency) is stopped and removed.`,
		`  keystonectl deploy plan -f deployment.toml
  keystonectl deploy apply -f deployment.toml --wait
  keystonectl deploy status
  keystonectl deploy cancel rollout-42`)
	cmd.AddCommand(newDeployApplyCmd(opts))
	cmd.AddCommand(newDeployPlanCmd(opts))
	cmd.AddCommand(newDeployListCmd(opts))
	cmd.AddCommand(newDeployStatusCmd(opts))
	cmd.AddCommand(newDeployRollbackCmd(opts))
	cmd.AddCommand(newDeployCancelCmd(opts))
	return cmd
}

func newDeployListCmd(opts *options) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the deployments the agent has recorded",
		Long: `List the deployments the agent has recorded, newest first: status (QUEUED, IN_PROGRESS, SUCCEEDED, FAILED,
CANCELED), whether a failed one was rolled back, when it was created, how
long it took and why it failed.

With -o json the list is the agent's answer unchanged.

Exit codes:
  0  the list was printed
  1  the agent could not be asked
  2  usage error`,
		Example: `  keystonectl deploy list
  keystonectl deploy list --limit 100
  keystonectl -o json deploy list`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return flagErrorf(cmd, "--limit must be 0 or more, got %d", limit)
			}
			c := opts.client()
			defer c.Close()
			list, err := c.Deployments(cmd.Context(), limit)
			if err != nil {
				return agentError("list deployments", err)
			}
			if list == nil {
				list = []api.Deployment{}
			}
			now := opts.now()
			t := table{header: []string{"ID", "STATUS", "ROLLED BACK", "CREATED", "DURATION", "ERROR"}}
			for _, d := range list {
				t.rows = append(t.rows, []string{
					d.ID, d.Status, yesNo(d.RolledBack), ago(now, d.CreatedAt), duration(d, now), orDash(truncate(errorText(d), 60)),
				})
			}
			return opts.render(list, t)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most `N` deployments (0: the agent's default, 20)")
	return cmd
}

func newDeployStatusCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status [ID]",
		Short: "Show a deployment and every step it took",
		Long: `Show deployment ID, or without ID the one in progress (else the most
recent): its status, plan, every checkpointed step and, for one in
progress, the step it is on and what it is waiting for, since when.

With -o json the deployment is the agent's answer unchanged.

Exit codes:
  0  the deployment was shown, whatever its status
  1  there is no such deployment (or none at all), or the agent could not
     be asked
  2  usage error`,
		Example: `  keystonectl deploy status
  keystonectl deploy status rollout-42
  keystonectl -o json deploy status rollout-42`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return flagErrorf(cmd, "%s takes at most one argument: ID", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c := opts.client()
			defer c.Close()
			var id string
			if len(args) == 1 {
				id = args[0]
			} else {
				list, err := c.Deployments(ctx, 0)
				if err != nil {
					return agentError("list deployments", err)
				}
				latest, ok := latestDeployment(list)
				if !ok {
					return fmt.Errorf("the agent has no deployments yet; apply one with: keystonectl deploy apply -f deployment.toml")
				}
				id = latest.ID
			}
			d, err := c.Deployment(ctx, id)
			if err != nil {
				return deploymentError(err)
			}
			return renderDeployment(opts, d)
		},
	}
}

// latestDeployment picks what deploy status shows without an ID: the one
// in progress, else the most recently created.
func latestDeployment(list []api.Deployment) (api.Deployment, bool) {
	if len(list) == 0 {
		return api.Deployment{}, false
	}
	for _, d := range list {
		if d.Status == statusInProgress {
			return d, true
		}
	}
	return slices.MaxFunc(list, func(a, b api.Deployment) int { return a.CreatedAt.Compare(b.CreatedAt) }), true
}

// renderDeployment prints one deployment: as the wire type with -o json, or
// as its fields, its plan and its steps.
func renderDeployment(opts *options, d api.Deployment) error {
	if opts.Output == formatJSON {
		return writeJSON(opts.Out, d)
	}
	now := opts.now()
	fields := table{rows: [][]string{
		{"ID", d.ID},
		{"STATUS", statusText(d)},
		{"CREATED", stamp(now, d.CreatedAt)},
		{"UPDATED", stamp(now, d.UpdatedAt)},
	}}
	if d.FinishedAt != nil {
		fields.rows = append(fields.rows, []string{"FINISHED", stamp(now, *d.FinishedAt)}, []string{"DURATION", duration(d, now)})
	}
	if !finished(d.Status) {
		if step := currentStep(d); step != "" {
			at := d.Steps[len(d.Steps)-1].At
			fields.rows = append(fields.rows, []string{"STEP", step + ", since " + stamp(now, at)})
		}
		if d.WaitingFor != "" {
			waiting := d.WaitingFor
			if d.Since != nil {
				waiting += ", since " + stamp(now, *d.Since)
			}
			fields.rows = append(fields.rows, []string{"WAITING FOR", waiting})
		}
	}
	if e := errorText(d); e != "" {
		fields.rows = append(fields.rows, []string{"ERROR", e})
	}
	return writeSections(opts.Out,
		section{table: fields},
		section{title: "PLAN", table: planTable(d.Plan)},
		section{title: "STEPS", table: stepsTable(d.Steps, now)},
	)
}

// statusText is the status with how a failure ended: "FAILED (rolled back)".
func statusText(d api.Deployment) string {
	if d.RolledBack {
		return d.Status + " (rolled back)"
	}
	return d.Status
}

// errorText is a deployment's error with its code: "health timeout
// [HEALTH_TIMEOUT]"; "" when there is none.
func errorText(d api.Deployment) string {
	switch {
	case d.Error != "" && d.ErrorCode != "":
		return d.Error + " [" + d.ErrorCode + "]"
	case d.Error != "":
		return d.Error
	default:
		return d.ErrorCode
	}
}

// duration is how long a deployment took, or has taken so far.
func duration(d api.Deployment, now time.Time) string {
	if d.CreatedAt.IsZero() {
		return "-"
	}
	end := now
	if d.FinishedAt != nil {
		end = *d.FinishedAt
	}
	return elapsed(end.Sub(d.CreatedAt))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func planTable(plan []api.PlanItem) table {
	t := table{header: []string{"COMPONENT", "ACTION", "FROM", "TO", "REASON"}}
	for _, p := range plan {
		t.rows = append(t.rows, []string{p.Component, p.Action, orDash(p.FromVersion), orDash(p.ToVersion), orDash(p.Reason)})
	}
	return t
}

func stepsTable(steps []api.Step, now time.Time) table {
	t := table{header: []string{"SEQ", "TIME", "AGO", "STEP", "COMPONENT", "STATUS", "DETAIL"}}
	for _, s := range steps {
		t.rows = append(t.rows, []string{
			strconv.FormatInt(s.Seq, 10), s.At.Local().Format("15:04:05.000"), ago(now, s.At),
			s.Name, orDash(s.Component), s.Status, orDash(s.Detail),
		})
	}
	return t
}

// outcome is the error that ends a command which waited for deployment d:
// nil only when it SUCCEEDED.
func outcome(d api.Deployment) error {
	if d.Status == statusSucceeded {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "deployment %s %s", d.ID, d.Status)
	if e := errorText(d); e != "" {
		b.WriteString(": " + e)
	}
	if d.RolledBack {
		b.WriteString("; the previous deployment was restored")
	}
	return fmt.Errorf("%s", b.String())
}

func newDeployRollbackCmd(opts *options) *cobra.Command {
	var (
		w      waitFlags
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "rollback [--dry-run] [--wait] [--timeout D]",
		Short: "Re-apply the last successful deployment before the current one",
		Long: `Re-apply the last deployment that succeeded before the current one, with
its versions and configuration, as a new deployment with its own ID. It
queues behind a deployment in progress.

With --dry-run, show which deployment it would re-apply and what that
would change, and change nothing. With --wait, follow it until it ends, as
deploy apply --wait does.

Exit codes:
  0  the rollback was accepted (with --wait: it SUCCEEDED; with
     --dry-run: the plan was shown)
  1  there is nothing to roll back to, it failed or was canceled, the
     wait timed out, or the agent could not be asked
  2  usage error`,
		Example: `  keystonectl deploy rollback --dry-run
  keystonectl deploy rollback
  keystonectl deploy rollback --wait --timeout 5m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := w.check(cmd); err != nil {
				return err
			}
			if dryRun && w.wait {
				return flagErrorf(cmd, "--dry-run changes nothing, so there is nothing to --wait for")
			}
			c := opts.client()
			defer c.Close()
			acc, err := c.RollbackDeployment(cmd.Context(), dryRun)
			if err != nil {
				return agentError("", err) // the agent's message says it is a rollback
			}
			if dryRun {
				if opts.Output == formatJSON {
					return writeJSON(opts.Out, acc)
				}
				return writeSections(opts.Out,
					section{table: table{rows: [][]string{{"a rollback would re-apply deployment " + acc.RollbackTo}}}},
					section{title: "PLAN", table: planTable(acc.Plan)},
					section{table: table{rows: [][]string{{"roll back with: keystonectl deploy rollback"}}}},
				)
			}
			return finishSubmit(cmd, opts, c, acc, w)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what the rollback would change, and change nothing")
	w.register(cmd)
	return cmd
}

func newDeployCancelCmd(opts *options) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "cancel ID [--wait] [--timeout D]",
		Short: "Stop a deployment at its next safe point and roll it back",
		Long: `Ask the agent to stop deployment ID at its next safe point and roll back
what it changed; a queued one is dropped before it starts. The command
returns once the agent has taken the request; with --wait it follows the
deployment until it ends.

Exit codes:
  0  the cancel was taken (with --wait: the deployment ended CANCELED)
  1  there is no such deployment, it had already finished, with --wait it
     finished otherwise or the wait timed out, or the agent could not be
     asked
  2  usage error`,
		Example: `  keystonectl deploy cancel rollout-42
  keystonectl deploy cancel rollout-42 --wait`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return flagErrorf(cmd, "%s takes one argument: ID, the deployment (see keystonectl deploy list)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := w.check(cmd); err != nil {
				return err
			}
			id := args[0]
			c := opts.client()
			defer c.Close()
			d, err := c.CancelDeployment(cmd.Context(), id)
			if err != nil {
				return deploymentError(err)
			}
			if d.ID == "" {
				d.ID = id
			}
			if !w.wait {
				if opts.Output == formatJSON {
					return writeJSON(opts.Out, d)
				}
				_, err := fmt.Fprintf(opts.Out, "cancel requested: deployment %s stops at its next safe point and rolls back\nfollow it with: keystonectl deploy status %s\n", id, id)
				return err
			}
			d, err = waitWithProgress(cmd, opts, c, id, w.timeout)
			if err != nil {
				return err
			}
			if err := renderDeployment(opts, d); err != nil {
				return err
			}
			if d.Status != statusCanceled {
				return fmt.Errorf("deployment %s ended %s, not CANCELED: it finished before the cancel took effect", id, statusText(d))
			}
			return nil
		},
	}
	w.register(cmd)
	return cmd
}
