package runner

import (
	"errors"
	"fmt"
	"math"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrRoot says a process would run as root (uid 0) while root is not
// allowed (security.allow_root = false).
var ErrRoot = errors.New("would run as root (uid 0)")

// Account is a resolved run_as: the ids a process takes on.
type Account struct {
	UID, GID uint32
	User     string // login name; "" when given by number without an entry
	Home     string
}

// Account lookups, replaceable by tests that need an account database
// with more than the host's entries.
var (
	lookupUserName  = user.Lookup
	lookupUserID    = user.LookupId
	lookupGroupName = user.LookupGroup
)

// ResolveRunAs reads run_as, "user:group" or "user" (the account's primary
// group), each a name from the account database or a decimal id. Ids are
// read by value ("00" is 0). A signed or out-of-range id is refused rather
// than read modulo 2^32, and so is 4294967295, which setresuid takes as "no
// change". "" gives nil: the process keeps the agent's credentials.
func ResolveRunAs(runAs string) (*Account, error) {
	if runAs == "" {
		return nil, nil
	}
	name, group, hasGroup := strings.Cut(runAs, ":")
	if name == "" || hasGroup && group == "" {
		return nil, fmt.Errorf("run_as %q: want user:group or user", runAs)
	}
	acct, err := lookupUser(name)
	if err == nil && hasGroup {
		acct.GID, err = lookupGroup(group)
	}
	if err != nil {
		return nil, fmt.Errorf("run_as %q: %w", runAs, err)
	}
	return acct, nil
}

// RunsAsRoot reports whether a process would run as root: runAs, or
// defaultRunAs when runAs is "", resolved by ResolveRunAs, or the agent
// itself when both are "". Root is uid 0 by value, whatever the spelling.
// The deployment check and the runner both decide through it, so that a
// deployment accepted is never refused at start for being root, nor the
// other way round.
func RunsAsRoot(runAs, defaultRunAs string) (bool, error) {
	if runAs == "" {
		runAs = defaultRunAs
	}
	acct, err := ResolveRunAs(runAs)
	if err != nil {
		return false, err
	}
	return isRoot(acct), nil
}

// CheckRunAs resolves runAs and, unless allowRoot, refuses it when the
// process would run as root; the error then wraps ErrRoot.
func CheckRunAs(runAs string, allowRoot bool) (*Account, error) {
	acct, err := ResolveRunAs(runAs)
	if err != nil || allowRoot || !isRoot(acct) {
		return acct, err
	}
	if runAs == "" {
		return nil, fmt.Errorf("no run_as, so it %w like the agent, and security.allow_root is false", ErrRoot)
	}
	return nil, fmt.Errorf("run_as %q %w, and security.allow_root is false", runAs, ErrRoot)
}

// isRoot tells whether a process with acct (nil: the agent's credentials)
// runs as uid 0. Any of the agent's real, effective and saved uids counts,
// since a process holding one of them as 0 can take root back.
func isRoot(acct *Account) bool {
	if acct != nil {
		return acct.UID == 0
	}
	r, e, s := unix.Getresuid()
	return r == 0 || e == 0 || s == 0
}

// lookupUser finds a user by name, or by id when it is all digits (an id
// without an account entry is taken as is, its gid the same number).
func lookupUser(name string) (*Account, error) {
	id, numeric, err := parseID(name)
	if err != nil {
		return nil, fmt.Errorf("user %w", err)
	}
	var u *user.User
	if numeric {
		if u, err = lookupUserID(strconv.FormatUint(uint64(id), 10)); err != nil {
			return &Account{UID: id, GID: id}, nil
		}
	} else if u, err = lookupUserName(name); err != nil {
		return nil, err
	}
	acct := &Account{User: u.Username, Home: u.HomeDir}
	if acct.UID, err = dbID(u.Uid); err == nil {
		acct.GID, err = dbID(u.Gid)
	}
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", name, err)
	}
	return acct, nil
}

// lookupGroup finds a group by name, or by id when it is all digits.
func lookupGroup(name string) (uint32, error) {
	id, numeric, err := parseID(name)
	switch {
	case err != nil:
		return 0, fmt.Errorf("group %w", err)
	case numeric:
		return id, nil
	}
	g, err := lookupGroupName(name)
	if err != nil {
		return 0, err
	}
	if id, err = dbID(g.Gid); err != nil {
		return 0, fmt.Errorf("group %s: %w", name, err)
	}
	return id, nil
}

// noChangeID is (uid_t)-1, which setresuid and setresgid read as "leave
// this id as it is": never an id to run as.
const noChangeID = math.MaxUint32

// parseID reads s as a decimal id when it is one (numeric true). A leading
// sign makes it neither an id nor a valid name: "-0" must not become 0 by
// one reading and a name lookup by another.
func parseID(s string) (id uint32, numeric bool, err error) {
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return 0, false, fmt.Errorf("%q: a sign is allowed neither in an id nor in a name", s)
	}
	if strings.Trim(s, "0123456789") != "" {
		return 0, false, nil
	}
	id, err = dbID(s)
	return id, true, err
}

// dbID reads a decimal id by value, refusing what does not fit in 32 bits
// (2^32 must not wrap to root) and noChangeID.
func dbID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == noChangeID {
		return 0, fmt.Errorf("id %q is not a number from 0 to %d", s, uint64(noChangeID-1))
	}
	return uint32(n), nil
}
