package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/api"
)

func newComponentCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("component", "Inspect and control the components on this device",
		`Inspect the components the local agent runs (their state, process, health
and resource use) and start, stop or restart them, over the agent's socket.`,
		`  keystonectl component list
  keystonectl component get com.example.hello
  keystonectl component restart com.example.hello
  keystonectl component logs -f com.example.hello`)
	cmd.AddCommand(newComponentListCmd(opts))
	cmd.AddCommand(newComponentGetCmd(opts))
	for _, verb := range componentVerbs() {
		cmd.AddCommand(newComponentActionCmd(opts, verb))
	}
	cmd.AddCommand(newComponentLogsCmd(opts))
	return cmd
}

// oneName accepts exactly one positional argument, a component name.
func oneName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return flagErrorf(cmd, "%s takes one argument: NAME, the component (see keystonectl component list)", cmd.CommandPath())
	}
	return nil
}

func newComponentListCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the components and their state",
		Long: `List every component the agent knows, with its version, kind, state (one
of NEW INSTALLED STARTING RUNNING DEGRADED STOPPING STOPPED FINISHED
ERRORED BROKEN), health, process ID, restarts, how long it has been in its
state, CPU and resident memory.

With -o json the list is the agent's answer unchanged: objects with name,
version, kind, state, pid, restarts, since, health, last_error,
cpu_percent and rss_bytes.

Exit codes:
  0  the list was printed
  1  the agent could not be asked (the reason is on stderr)
  2  usage error`,
		Example: `  keystonectl component list
  keystonectl -o json component list`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := opts.client()
			defer c.Close()
			list, err := c.Components(cmd.Context())
			if err != nil {
				return agentError("list components", err)
			}
			if list == nil {
				list = []api.Component{}
			}
			now := opts.now()
			t := table{header: []string{"NAME", "VERSION", "KIND", "STATE", "HEALTH", "PID", "RESTARTS", "SINCE", "CPU", "RSS", "LAST ERROR"}}
			for _, comp := range list {
				t.rows = append(t.rows, []string{
					comp.Name, comp.Version, comp.Kind, comp.State, orDash(comp.Health), pidText(comp.Pid),
					strconv.Itoa(comp.Restarts), ago(now, comp.Since), cpuText(comp), rssText(comp),
					orDash(truncate(comp.LastError, 48)),
				})
			}
			return opts.render(list, t)
		},
	}
}

func newComponentGetCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show one component and its recent transitions",
		Long: `Show one component: everything component list shows, the full last error
(with the end of the process's stderr when it failed), what a failing
health check said, what it waits for when it should run but does not yet,
and its recent state transitions (oldest first) with their time, version
and reason. A component a deployment removed (a rollback, say) is still
shown as it last was, marked removed, for as long as its transitions are
kept.

With -o json the answer is the agent's unchanged: the component's fields
plus transitions, a list of {ts, version, from, to, reason}.

Exit codes:
  0  the component was shown
  1  there is no such component, or the agent could not be asked
  2  usage error`,
		Example: `  keystonectl component get com.example.hello
  keystonectl -o json component get com.example.hello`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := opts.client()
			defer c.Close()
			d, err := c.Component(cmd.Context(), args[0])
			if err != nil {
				return componentError("component get", args[0], err)
			}
			if opts.Output == formatJSON {
				return writeJSON(opts.Out, d)
			}
			now := opts.now()
			state := d.State
			if d.Removed {
				state += " (removed: no longer deployed; its last state)"
			}
			fields := table{rows: [][]string{
				{"NAME", d.Name},
				{"VERSION", d.Version},
				{"KIND", orDash(d.Kind)},
				{"STATE", state},
				{"SINCE", stamp(now, d.Since)},
				{"HEALTH", orDash(strings.TrimSuffix(d.Health+": "+d.HealthDetail, ": "))},
				{"PID", pidText(d.Pid)},
				{"RESTARTS", strconv.Itoa(d.Restarts)},
				{"CPU", cpuText(d.Component)},
				{"RSS", rssText(d.Component)},
				{"LAST ERROR", orDash(d.LastError)},
			}}
			if d.WaitingFor != "" {
				fields.rows = append(fields.rows, []string{"WAITING FOR", d.WaitingFor})
			}
			transitions := table{header: []string{"TIME", "AGO", "VERSION", "FROM", "TO", "REASON"}}
			for _, tr := range d.Transitions {
				transitions.rows = append(transitions.rows, []string{
					tr.At.Local().Format("2006-01-02 15:04:05.000"), ago(now, tr.At), orDash(tr.Version), orDash(tr.From), tr.To, orDash(tr.Reason),
				})
			}
			return writeSections(opts.Out, section{table: fields}, section{title: "TRANSITIONS", table: transitions})
		},
	}
}

// componentVerb is one of the actions on a component.
type componentVerb struct {
	name  string
	short string
	long  string
	call  func(c *api.Client) func(ctx context.Context, name string) (api.Component, error)
}

// componentVerbs lists the actions, in the order help shows them.
func componentVerbs() []componentVerb {
	return []componentVerb{
		{
			name:  "restart",
			short: "Restart a component",
			long: `Stop the component's process (its stop signal, then SIGKILL after
stop_timeout) and start it again; its hard dependents are restarted with it.
A BROKEN component gets a fresh restart budget.`,
			call: func(c *api.Client) func(context.Context, string) (api.Component, error) { return c.RestartComponent },
		},
		{
			name:  "stop",
			short: "Stop a component until it is started again",
			long: `Stop the component (its hard dependents first). It stays STOPPED, and is
not restarted by its restart policy, until component start, component
restart or a deployment that changes it. A failed component (ERRORED or
BROKEN) is settled in STOPPED, which also cancels its broken_retry.`,
			call: func(c *api.Client) func(context.Context, string) (api.Component, error) { return c.StopComponent },
		},
		{
			name:  "start",
			short: "Start a stopped, finished or broken component",
			long: `Start a component that is STOPPED, FINISHED, ERRORED or BROKEN, once its
hard dependencies are RUNNING. When one is not, the answer is the current
state and what it waits for; it starts by itself once they are.`,
			call: func(c *api.Client) func(context.Context, string) (api.Component, error) { return c.StartComponent },
		},
	}
}

func newComponentActionCmd(opts *options, verb componentVerb) *cobra.Command {
	return &cobra.Command{
		Use:   verb.name + " NAME",
		Short: verb.short,
		Long: verb.long + `

The agent answers with the component's state once the request is taken;
component get or component list show how it goes on.

Exit codes:
  0  the agent took the request
  1  there is no such component, the component cannot do that in its
     state, or the agent could not be asked
  2  usage error`,
		Example: fmt.Sprintf("  keystonectl component %s com.example.hello", verb.name),
		Args:    oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := opts.client()
			defer c.Close()
			comp, err := verb.call(c)(cmd.Context(), args[0])
			if err != nil {
				return componentError("component "+verb.name, args[0], err)
			}
			if comp.Name == "" {
				comp.Name = args[0]
			}
			state := orDash(comp.State)
			if comp.WaitingFor != "" {
				state += " (waiting: " + comp.WaitingFor + ")"
			}
			return opts.render(comp, table{
				header: []string{"NAME", "VERSION", "STATE", "PID"},
				rows:   [][]string{{comp.Name, orDash(comp.Version), state, pidText(comp.Pid)}},
			})
		},
	}
}

func pidText(pid int) string {
	if pid <= 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

// cpuText and rssText show a component's resource use, "-" when it has no
// process to measure.
func cpuText(c api.Component) string {
	if c.Pid <= 0 && c.CPUPercent == 0 {
		return "-"
	}
	return strconv.FormatFloat(c.CPUPercent, 'f', 1, 64) + "%"
}

func rssText(c api.Component) string {
	if c.RSSBytes == 0 {
		return "-"
	}
	return bytesIEC(c.RSSBytes)
}
