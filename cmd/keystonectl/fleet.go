package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/comms/fleet"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/store"
)

// fleetOptions is what every fleet command shares.
type fleetOptions struct {
	*options
	config string // --config; "" means ./fleet.toml, else defaultFleetConfig
}

func (o *fleetOptions) load() (*fleetConfig, error) {
	path := o.config
	if path == "" {
		path = defaultFleetConfig
		if _, err := os.Stat("fleet.toml"); err == nil {
			path = "fleet.toml"
		}
	}
	return loadFleetConfig(path)
}

// openState opens the state file the configuration names.
func (o *fleetOptions) openState(ctx context.Context) (*fleetConfig, *store.Fleet, error) {
	c, err := o.load()
	if err != nil {
		return nil, nil, err
	}
	st, err := store.OpenFleet(ctx, c.State)
	if err != nil {
		return nil, nil, err
	}
	return c, st, nil
}

// runner connects a Runner with the configuration and its state file.
func (o *fleetOptions) runner(ctx context.Context) (*fleet.Runner, *store.Fleet, error) {
	c, st, err := o.openState(ctx)
	if err != nil {
		return nil, nil, err
	}
	cc, err := c.controllerConfig(true)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	r, err := fleet.OpenRunner(ctx, fleet.RunnerConfig{Controller: cc, State: st})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return r, st, nil
}

const fleetConfigHelp = `
Every fleet command reads the fleet configuration given by --config, or
else ./fleet.toml when it exists, or else ` + defaultFleetConfig + `:

  broker       = "mqtts://broker.example:8883"
  ca_file      = "/etc/keystone-fleet/ca.pem"
  cert_file    = "/etc/keystone-fleet/controller.pem"
  key_file     = "/etc/keystone-fleet/controller.key"
  topic_prefix = "keystone"                          # optional
  state        = "/var/lib/keystone-fleet/fleet.db"  # the state file
  sign_key     = "/etc/keystone-fleet/ops.key"       # signs every job

An unknown key is an error.`

func newFleetCmd(opts *options) *cobra.Command {
	fo := &fleetOptions{options: opts}
	cmd := newGroupCmd("fleet", "Roll deployments out to a fleet of devices over MQTT",
		`Roll a deployment out to many devices through the MQTT broker, in rings of
growing size, at a bounded rate, halting when too many devices fail.

A rollout is recorded in the state file: it can be driven in the
foreground (fleet deploy --wait) or by a service (fleet serve), and either
can be stopped and started again at any moment: the rollout continues from
its record, and no device gets a different job for it.
`+fleetConfigHelp,
		`  keystonectl fleet deploy -f deployment.toml --target group:pos --rings 10%,100% --wait
  keystonectl fleet status rollout-20260101-120000
  keystonectl fleet pause rollout-20260101-120000`)
	cmd.PersistentFlags().StringVar(&fo.config, "config", "", "fleet configuration `FILE` (default ./fleet.toml, else "+defaultFleetConfig+")")
	cmd.AddCommand(newFleetDeployCmd(fo), newFleetAgentUpdateCmd(fo), newFleetStatusCmd(fo), newFleetListCmd(fo), newFleetDevicesCmd(fo),
		newFleetControlCmd(fo, fleet.ControlPause, "Stop publishing new jobs of a rollout until resumed"),
		newFleetControlCmd(fo, fleet.ControlResume, "Continue a paused rollout"),
		newFleetControlCmd(fo, fleet.ControlCancel, "Cancel a rollout: devices not reached get nothing, jobs in flight are canceled"),
		newFleetServeCmd(fo))
	return cmd
}

// deployFlags are fleet deploy's flags as given.
type deployFlags struct {
	file, id, rings, maxFailure, rate, onHalt string
	targets                                   []string
	minExecuted                               int
	soak, deviceTimeout                       time.Duration
	wait                                      bool
}

// rolloutConfig checks the flags and turns them into a rollout, without
// its targets resolved.
func (f *deployFlags) rolloutConfig(manifest string, now time.Time) (fleet.Config, error) {
	cfg := fleet.Config{ID: f.id, Job: fleet.Template{Kind: message.KindDeployment, Manifest: manifest},
		MinExecuted: f.minExecuted, Soak: f.soak, DeviceTimeout: f.deviceTimeout, OnHalt: fleet.HaltPolicy(f.onHalt)}
	if cfg.ID == "" {
		cfg.ID = "rollout-" + now.UTC().Format("20060102-150405")
	}
	if len(f.targets) == 0 {
		return cfg, errors.New("--target is required: group:NAME or device:ID, repeatable")
	}
	for _, t := range f.targets {
		if k, n, ok := strings.Cut(t, ":"); !ok || n == "" || (k != "group" && k != "device") {
			return cfg, fmt.Errorf("--target %q: want group:NAME or device:ID", t)
		}
	}
	var err error
	for _, r := range strings.Split(f.rings, ",") {
		p, perr := parsePercent(r)
		if perr != nil {
			return cfg, fmt.Errorf("--rings %q: %w", f.rings, perr)
		}
		cfg.Rings = append(cfg.Rings, p)
	}
	if cfg.MaxFailureRate, err = parsePercent(f.maxFailure); err != nil {
		return cfg, fmt.Errorf("--max-failure-rate: %w", err)
	}
	if cfg.Rate, err = parseRate(f.rate); err != nil {
		return cfg, fmt.Errorf("--rate: %w", err)
	}
	if f.minExecuted < 0 || f.soak < 0 || f.deviceTimeout < 0 {
		return cfg, errors.New("--min-executed, --soak and --device-timeout cannot be negative")
	}
	if f.onHalt != string(fleet.HaltPause) && f.onHalt != string(fleet.HaltRollback) {
		return cfg, fmt.Errorf("--on-halt %q: want pause or rollback", f.onHalt)
	}
	return cfg, nil
}

// parsePercent reads "5%" (or "5") as 0.05, within 0 and 100%.
func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v < 0 || v > 100 {
		return 0, fmt.Errorf("%q is not a percentage from 0%% to 100%%", s)
	}
	return v / 100, nil
}

// parseRate reads "200/m" (also /s, /h; 0 for no limit) as jobs a minute.
func parseRate(s string) (int, error) {
	n, unit, _ := strings.Cut(s, "/")
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want N/s, N/m or N/h", s)
	}
	switch unit {
	case "s":
		return v * 60, nil
	case "m", "":
		return v, nil
	case "h":
		if v > 0 && v < 60 {
			return 0, fmt.Errorf("%q: below one job a minute, which is the finest rate", s)
		}
		return v / 60, nil
	}
	return 0, fmt.Errorf("%q: want N/s, N/m or N/h", s)
}

func newFleetDeployCmd(fo *fleetOptions) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy -f FILE --target group:NAME|device:ID ...",
		Short: "Start a rollout of a deployment manifest to devices",
		Long: `Record a rollout of the deployment manifest FILE to the devices named by
--target (device:ID, or group:NAME for every device whose retained state
lists the group) and, with --wait, drive it here until it ends.

Devices are walked in rings (--rings, cumulative shares of the targets,
the last 100%); ring membership is decided once from the rollout and
device ids. Jobs go out at most at --rate. A device succeeds when its job
SUCCEEDED and it then stayed healthy for --soak; one with no final status
within --device-timeout is TIMED_OUT; one offline when its ring starts is
OFFLINE (not a failure: its job waits for it on the broker). Once
--min-executed devices of a ring finished, failures above
--max-failure-rate halt the rollout; --on-halt rollback then sends the
devices that took the deployment the one they ran before: the manifest of
the last job that succeeded on the device in an earlier rollout recorded
in the state file, or else a manifest made from the device's reported
state (its components at the versions it runs, WITHOUT configuration
overrides); a device with neither is not rolled back.

Without --wait the rollout is recorded and 'fleet serve' drives it.
` + fleetConfigHelp + `

Exit codes:
  0  the rollout was recorded (with --wait: it SUCCEEDED)
  1  it could not be recorded, or (with --wait) it halted or was canceled
  2  usage error`,
		Example: `  keystonectl fleet deploy -f deployment.toml --target group:pos --wait
  keystonectl fleet deploy -f deployment.toml --target device:pos-12 --target device:pos-13
  keystonectl fleet deploy -f deployment.toml --target group:pos --rings 1%,10%,100% \
      --max-failure-rate 5% --soak 5m --rate 200/m --on-halt rollback`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.file == "" {
				return flagErrorf(cmd, "-f FILE is required: the deployment manifest")
			}
			cfg, err := f.rolloutConfig("", fo.now())
			if err != nil {
				return flagErrorf(cmd, "%v", err)
			}
			manifest, err := os.ReadFile(f.file)
			if err != nil {
				return fmt.Errorf("read the manifest: %w", err)
			}
			cfg.Job.Manifest = string(manifest)
			return fo.startRollout(cmd, cfg, f.targets, f.wait)
		},
	}
	f.register(cmd, true)
	return cmd
}

// startRollout resolves the targets, records the rollout and, when wait,
// drives it here until it ends.
func (fo *fleetOptions) startRollout(cmd *cobra.Command, cfg fleet.Config, targets []string, wait bool) error {
	ctx := cmd.Context() // canceled by Ctrl-C or SIGTERM (see untilSignal)
	r, st, err := fo.runner(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	defer r.Close(context.WithoutCancel(ctx))
	if cfg.Targets, err = r.Resolve(ctx, targets); err != nil {
		return err
	}
	if _, err := r.Create(ctx, cfg); err != nil {
		return fmt.Errorf("record rollout %s: %w", cfg.ID, err)
	}
	if !wait {
		return fo.render(map[string]any{"id": cfg.ID, "devices": len(cfg.Targets)},
			table{rows: [][]string{{fmt.Sprintf("rollout %s recorded for %d device(s); 'keystonectl fleet serve' drives it", cfg.ID, len(cfg.Targets))}}})
	}
	sum, err := r.Wait(ctx, cfg.ID)
	if err != nil {
		return err
	}
	if err := renderSummary(fo.options, sum); err != nil {
		return err
	}
	if sum.Phase != fleet.PhaseSucceeded {
		return &SilentError{Code: exitError}
	}
	return nil
}

// register adds the rollout flags to cmd; -f FILE too when manifest.
func (f *deployFlags) register(cmd *cobra.Command, manifest bool) {
	fl := cmd.Flags()
	if manifest {
		fl.StringVarP(&f.file, "file", "f", "", "the deployment manifest `FILE` (required)")
	}
	fl.StringArrayVar(&f.targets, "target", nil, "group:NAME or device:ID (repeatable; required)")
	fl.StringVar(&f.id, "id", "", "the rollout's `ID` (default rollout-<UTC time>)")
	fl.StringVar(&f.rings, "rings", "100%", "cumulative ring sizes, e.g. 1%,10%,100%")
	fl.StringVar(&f.maxFailure, "max-failure-rate", "5%", "failures among a ring's finished devices that halt the rollout")
	fl.IntVar(&f.minExecuted, "min-executed", 5, "finished devices of a ring before its failure rate is judged")
	fl.DurationVar(&f.soak, "soak", 2*time.Minute, "how long a device must stay healthy after its job succeeded")
	fl.DurationVar(&f.deviceTimeout, "device-timeout", 30*time.Minute, "time a device has to finish (0: no limit)")
	fl.StringVar(&f.rate, "rate", "200/m", "most jobs published per second, minute or hour (0: no limit)")
	fl.StringVar(&f.onHalt, "on-halt", "pause", "what a halt does besides stopping: pause, or rollback (devices that took the job get their last\n"+
		"deployment recorded here, else their reported components and versions without configuration overrides)")
	fl.BoolVar(&f.wait, "wait", false, "drive the rollout here until it ends")
}

// renderSummary prints a rollout's status: counts per outcome and per
// ring, then the failing devices.
func renderSummary(o *options, s fleet.Summary) error {
	t := table{header: []string{"RING", "SIZE", "DEVICES", "OUTCOMES"}}
	t.rows = append(t.rows, []string{"all", "", strconv.Itoa(sum(s.Counts)), counts(s.Counts)})
	for i, r := range s.Rings {
		t.rows = append(t.rows, []string{strconv.Itoa(i), fmt.Sprintf("%g%%", r.Fraction*100), strconv.Itoa(r.Devices), counts(r.Counts)})
	}
	t.rows = append(t.rows, []string{"phase", string(s.Phase), "", orDash(s.Reason)})
	for _, f := range s.Failing {
		t.rows = append(t.rows, []string{"failing", f.Device, string(f.Outcome), orDash(strings.TrimSpace(f.ErrorCode + " " + f.Detail))})
	}
	return o.render(s, t)
}

func sum(m map[fleet.Outcome]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func counts(m map[fleet.Outcome]int) string {
	var parts []string
	for _, o := range fleet.Outcomes {
		if m[o] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", o, m[o]))
		}
	}
	return orDash(strings.Join(parts, ", "))
}

func newFleetStatusCmd(fo *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status ID",
		Short: "Show a rollout's progress: outcomes per ring and failing devices",
		Long: `Show rollout ID as recorded in the state file: its phase, how many devices
are in each outcome overall and in each ring, and every failing device
(FAILED, REJECTED, TIMED_OUT) with its error code and detail.
` + fleetConfigHelp + `

Exit codes:
  0  the status was printed
  1  no such rollout, or the state file could not be read
  2  usage error`,
		Example: `  keystonectl fleet status rollout-20260101-120000
  keystonectl -o json fleet status rollout-20260101-120000`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, st, err := fo.openState(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			s, _, err := fleet.LoadSummary(cmd.Context(), st, args[0])
			if err != nil {
				return err
			}
			return renderSummary(fo.options, s)
		},
	}
}

func newFleetListCmd(fo *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the rollouts in the state file",
		Long: `List every rollout recorded in the state file, oldest first, with its
phase, its devices and when it was created and last changed.
` + fleetConfigHelp + `

Exit codes:
  0  the list was printed
  1  the state file could not be read
  2  usage error`,
		Example: `  keystonectl fleet list
  keystonectl -o json fleet list`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, st, err := fo.openState(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			all, err := st.Rollouts(cmd.Context(), false)
			if err != nil {
				return err
			}
			type item struct {
				ID        string    `json:"id"`
				Phase     string    `json:"phase"`
				Open      bool      `json:"open"`
				Devices   int       `json:"devices"`
				CreatedAt time.Time `json:"created_at"`
				UpdatedAt time.Time `json:"updated_at"`
			}
			list := []item{}
			t := table{header: []string{"ID", "PHASE", "DEVICES", "CREATED", "UPDATED"}}
			now := fo.now()
			for _, ro := range all {
				var s fleet.State
				_ = json.Unmarshal(ro.State, &s)
				list = append(list, item{ro.ID, ro.Phase, ro.Open, len(s.Devices), ro.CreatedAt, ro.UpdatedAt})
				t.rows = append(t.rows, []string{ro.ID, ro.Phase, strconv.Itoa(len(s.Devices)), ago(now, ro.CreatedAt), ago(now, ro.UpdatedAt)})
			}
			return fo.render(list, t)
		},
	}
}

func newFleetDevicesCmd(fo *fleetOptions) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the devices and their last reported state",
		Long: `List the devices whose retained state the fleet controller has seen (it
records them while 'fleet serve' or 'fleet deploy' runs), with whether they
are online and healthy, their groups and agent version, and when they were
last heard of. --group keeps the devices of one group.
` + fleetConfigHelp + `

Exit codes:
  0  the list was printed
  1  the state file could not be read
  2  usage error`,
		Example: `  keystonectl fleet devices
  keystonectl fleet devices --group pos`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, st, err := fo.openState(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			devs, err := st.DeviceStates(cmd.Context())
			if err != nil {
				return err
			}
			list := []message.State{}
			t := table{header: []string{"DEVICE", "ONLINE", "HEALTHY", "GROUPS", "AGENT", "LAST SEEN"}}
			now := fo.now()
			for _, d := range devs {
				var s message.State
				if json.Unmarshal(d.Body, &s) != nil || group != "" && !slices.Contains(s.Groups, group) {
					continue
				}
				list = append(list, s)
				t.rows = append(t.rows, []string{d.ID, yesNo(s.Online), yesNo(s.Healthy), orDash(strings.Join(s.Groups, ",")),
					orDash(s.AgentVersion), ago(now, d.LastSeen)})
			}
			return fo.render(list, t)
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "list only the devices of group `G`")
	return cmd
}

func newFleetControlCmd(fo *fleetOptions, action, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Long: short + `.

The request is recorded in the state file; the process driving the
rollout ('fleet serve' or 'fleet deploy --wait') applies it within a
second. A request the rollout's phase does not allow (resuming a running
rollout) is dropped by it, with a warning in its log.
` + fleetConfigHelp + `

Exit codes:
  0  the request was recorded
  1  no such rollout, or the state file could not be written
  2  usage error`,
		Example: "  keystonectl fleet " + action + " rollout-20260101-120000",
		Args:    exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, st, err := fo.openState(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RequestControl(cmd.Context(), args[0], action, reason, time.Time{}); err != nil {
				return err
			}
			return fo.render(map[string]string{"id": args[0], "requested": action},
				table{rows: [][]string{{fmt.Sprintf("%s of %s requested", action, args[0])}}})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the rollout")
	return cmd
}

func newFleetServeCmd(fo *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Drive every open rollout until interrupted",
		Long: `Connect to the broker and drive every open rollout of the state file,
including those recorded later by 'fleet deploy', until interrupted
(SIGINT, SIGTERM). Stopped and started again, it continues each rollout
from its record. Two processes never drive the same rollout at once: each
claims a rollout for 30 seconds at a time.
` + fleetConfigHelp + `

Exit codes:
  0  interrupted
  1  the broker or the state file failed
  2  usage error`,
		Example: `  keystonectl fleet serve --config /etc/keystone-fleet/fleet.toml`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context() // canceled by Ctrl-C or SIGTERM (see untilSignal)
			r, st, err := fo.runner(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			defer r.Close(context.WithoutCancel(ctx))
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		},
	}
}

// exactArgs accepts exactly n arguments, described by what (e.g. "ID").
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return flagErrorf(cmd, "%s takes %d argument(s): %s, got %d", cmd.CommandPath(), n, what, len(args))
		}
		return nil
	}
}
