package runner

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// account is a resolved run_as.
type account struct {
	uid, gid int
	user     string // login name; "" when given by number without an entry
	home     string
}

// resolveRunAs looks up "user:group" or "user" (by name or number) in the
// host's account database. A user alone runs with its primary group.
func resolveRunAs(runAs string) (*account, error) {
	if runAs == "" {
		return nil, nil
	}
	name, group, hasGroup := strings.Cut(runAs, ":")
	if name == "" || hasGroup && group == "" {
		return nil, fmt.Errorf("run_as %q: want user:group or user", runAs)
	}
	acct := &account{}
	u, err := lookupUser(name)
	if err != nil {
		return nil, fmt.Errorf("run_as %q: %w", runAs, err)
	}
	acct.user, acct.home = u.Username, u.HomeDir
	if acct.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("run_as %q: uid %q: %w", runAs, u.Uid, err)
	}
	gid := u.Gid
	if hasGroup {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("run_as %q: %w", runAs, err)
		}
		gid = g.Gid
	}
	if acct.gid, err = strconv.Atoi(gid); err != nil {
		return nil, fmt.Errorf("run_as %q: gid %q: %w", runAs, gid, err)
	}
	return acct, nil
}

// lookupUser finds a user by name, or by number when it is all digits (a
// number without an account entry is accepted as is).
func lookupUser(name string) (*user.User, error) {
	if _, err := strconv.Atoi(name); err == nil {
		if u, err := user.LookupId(name); err == nil {
			return u, nil
		}
		return &user.User{Uid: name, Gid: name}, nil
	}
	return user.Lookup(name)
}

// lookupGroup finds a group by name, or by number when it is all digits.
func lookupGroup(name string) (*user.Group, error) {
	if _, err := strconv.Atoi(name); err == nil {
		return &user.Group{Gid: name, Name: name}, nil
	}
	return user.LookupGroup(name)
}
