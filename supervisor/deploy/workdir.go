package deploy

import (
	"fmt"
	"os"

	"github.com/keystone-edge/keystone/runner"
)

// prepareWorkDirs makes each component's work folder (work/<name>/, kept
// across versions and never removed by the engine) and, when the agent runs
// as root, gives it to the component's run_as user so the component can
// write there.
func prepareWorkDirs(s *set, defaultRunAs string) error {
	for _, name := range s.names() {
		c := s.comps[name]
		if err := os.MkdirAll(c.WorkDir, 0o750); err != nil {
			return fmt.Errorf("work folder of %s: %w", name, err)
		}
		runAs := c.Recipe.Security.RunAs
		if runAs == "" {
			runAs = defaultRunAs
		}
		if runAs == "" || os.Geteuid() != 0 {
			continue
		}
		acct, err := runner.ResolveRunAs(runAs)
		if err != nil {
			return fmt.Errorf("work folder of %s: %w", name, err)
		}
		if err := os.Chown(c.WorkDir, int(acct.UID), int(acct.GID)); err != nil {
			return fmt.Errorf("work folder of %s: %w", name, err)
		}
	}
	return nil
}
