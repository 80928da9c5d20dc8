package main

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/comms/fleet"
	"github.com/keystone-edge/keystone/comms/message"
)

// agentUpdateConfig checks the flags and VERSION and turns them into a
// rollout of agent_update jobs, without its targets resolved.
func (f *deployFlags) agentUpdateConfig(version string, now time.Time) (fleet.Config, error) {
	if strings.TrimSpace(version) == "" {
		return fleet.Config{}, errors.New("VERSION must not be empty")
	}
	cfg, err := f.rolloutConfig("", now)
	if err != nil {
		return cfg, err
	}
	cfg.Job = fleet.Template{Kind: message.KindAgentUpdate, Version: version}
	return cfg, nil
}

func newFleetAgentUpdateCmd(fo *fleetOptions) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "agent-update VERSION --target group:NAME|device:ID ...",
		Short: "Start a rollout of an agent version to devices",
		Long: `Record a rollout of agent_update jobs for VERSION, the keystone-agent
release each device resolves from its component repository, to the
devices named by --target (device:ID, or group:NAME for every device whose
retained state lists the group) and, with --wait, drive it here until it
ends.

It is the rollout of 'fleet deploy' with another kind of job: the same
rings, rate, soak, device timeout and failure budget, the same record in
the state file, and 'fleet status', 'pause', 'resume', 'cancel' and
'serve' apply to it alike. A device whose agent cannot update itself
answers REJECTED (UNSUPPORTED), which counts as a failure. With --on-halt
rollback, a halt sends the devices that took the update an agent_update
job for the agent version they reported before the rollout; a device that
reported none is not rolled back.

Without --wait the rollout is recorded and 'fleet serve' drives it.
` + fleetConfigHelp + `

Exit codes:
  0  the rollout was recorded (with --wait: it SUCCEEDED)
  1  it could not be recorded, or (with --wait) it halted or was canceled
  2  usage error`,
		Example: `  keystonectl fleet agent-update 1.4.0 --target group:pos --wait
  keystonectl fleet agent-update 1.4.0 --target group:pos --rings 1%,10%,100% \
      --max-failure-rate 5% --soak 5m --on-halt rollback`,
		Args: exactArgs(1, "VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.agentUpdateConfig(args[0], fo.now())
			if err != nil {
				return flagErrorf(cmd, "%v", err)
			}
			return fo.startRollout(cmd, cfg, f.targets, f.wait)
		},
	}
	f.register(cmd, false)
	cmd.Flags().Lookup("on-halt").Usage = "what a halt does besides stopping: pause, or rollback (devices that took the update get the agent version they reported before)"
	return cmd
}
