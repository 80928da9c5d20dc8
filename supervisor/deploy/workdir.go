package deploy

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
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
		uid, gid, err := lookupRunAs(runAs)
		if err != nil {
			return fmt.Errorf("work folder of %s: %w", name, err)
		}
		if err := os.Chown(c.WorkDir, uid, gid); err != nil {
			return fmt.Errorf("work folder of %s: %w", name, err)
		}
	}
	return nil
}

// lookupRunAs resolves "user[:group]", by name or number, to ids.
func lookupRunAs(runAs string) (uid, gid int, err error) {
	name, group, hasGroup := strings.Cut(runAs, ":")
	u, err := lookupUser(name)
	if err != nil {
		return 0, 0, fmt.Errorf("run_as %q: %w", runAs, err)
	}
	if uid, err = strconv.Atoi(u.Uid); err != nil {
		return 0, 0, fmt.Errorf("run_as %q: uid %q: %w", runAs, u.Uid, err)
	}
	g := u.Gid
	if hasGroup {
		if _, err := strconv.Atoi(group); err == nil {
			g = group
		} else {
			grp, err := user.LookupGroup(group)
			if err != nil {
				return 0, 0, fmt.Errorf("run_as %q: %w", runAs, err)
			}
			g = grp.Gid
		}
	}
	if gid, err = strconv.Atoi(g); err != nil {
		return 0, 0, fmt.Errorf("run_as %q: gid %q: %w", runAs, g, err)
	}
	return uid, gid, nil
}

func lookupUser(name string) (*user.User, error) {
	if _, err := strconv.Atoi(name); err == nil {
		if u, err := user.LookupId(name); err == nil {
			return u, nil
		}
		return &user.User{Uid: name, Gid: name}, nil
	}
	return user.Lookup(name)
}
