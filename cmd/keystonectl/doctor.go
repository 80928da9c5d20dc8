package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/doctor"
	"github.com/keystone-edge/keystone/agent/provision"
)

// doctorResult is what doctor prints with -o json.
type doctorResult struct {
	OK     bool           `json:"ok"`
	Checks []doctor.Check `json:"checks"`
}

func newDoctorCmd(opts *options, env func() doctor.Env) *cobra.Command {
	var configPath, root string
	cmd := &cobra.Command{
		Use:   "doctor [--config FILE] [--root DIR]",
		Short: "Check that this device can run the agent as configured",
		Long: `Check this device against the agent's configuration and say, for each
check, ok, warn, fail or skip, with what to do about it:

  config       agent.toml loads and passes validation
  cgroups      cgroups are mounted with the cpu, memory and pids controllers
               the resource limits need
  account      the keystone user and group exist
  permissions  the data folder (0750) and the device key (0600) are private
               to the agent
  clock        the clock is within the device certificate's validity (a
               device without a real-time clock before NTP fails every TLS
               connection); warns 30 days before the certificate ends
  disk         free space in data_dir (fails under 128MiB, warns under 1GiB
               or 10%)
  broker       the broker accepts the device's certificate and its job
               subscription, with the configured mTLS (a clean session of
               its own: a running agent is not disturbed)
  repository   the TUF root is signed by its own keys, and the repository
               serves metadata signed under it
  trust        every key in trust.keys loads
  systemd      keystone-agent.service is active and enabled (skipped with
               a warning where there is no systemctl)

--root DIR checks an image's root folder before it is flashed: the
configuration and every path in it are read under DIR, and the cgroup and
systemd checks, which are about the running machine, are skipped. Nothing
is changed either way.

Exit codes:
  0  no check failed (warnings are allowed)
  1  at least one check failed
  2  usage error`,
		Example: `  keystonectl doctor
  keystonectl -o json doctor --config /etc/keystone/agent.toml
  keystonectl doctor --root ./image-root`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := env()
			e.Root = root
			checks := doctor.Run(cmd.Context(), configPath, e)
			res := doctorResult{OK: !doctor.Failed(checks), Checks: checks}
			t := table{header: []string{"CHECK", "STATUS", "DETAIL"}}
			for _, c := range checks {
				detail := c.Message
				if c.Fix != "" && c.Status != doctor.OK {
					detail += "\n  fix: " + c.Fix
				}
				lines := strings.Split(detail, "\n")
				t.rows = append(t.rows, []string{c.Name, strings.ToUpper(string(c.Status)), lines[0]})
				for _, l := range lines[1:] {
					t.rows = append(t.rows, []string{"", "", l})
				}
			}
			if err := opts.render(res, t); err != nil {
				return err
			}
			if !res.OK {
				n := 0
				for _, c := range checks {
					if c.Status == doctor.Fail {
						n++
					}
				}
				return fmt.Errorf("%d check(s) failed", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", provision.ConfigFile, "the agent's configuration `FILE`")
	cmd.Flags().StringVar(&root, "root", "/", "check the root folder `DIR` of an image instead of this system")
	return cmd
}
