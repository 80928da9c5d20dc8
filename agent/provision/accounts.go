package provision

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// AccountName is the user and group the agent's files belong to.
const AccountName = "keystone"

// Account is a user and its group as a root folder's etc/passwd and
// etc/group name them.
type Account struct {
	User  string
	Group string
	UID   int
	GID   int
}

// ErrNoAccount is returned when the root folder has no such user or group.
var ErrNoAccount = errors.New("no such account")

// LookupAccount finds user and group in root's etc/passwd and etc/group.
// Those of root are read, not the host's: an image's keystone user may
// have another uid than the machine that provisions it.
func LookupAccount(root, user, group string) (Account, error) {
	a := Account{User: user, Group: group}
	uid, _, err := findEntry(filepath.Join(root, "etc", "passwd"), user, 2)
	if err != nil {
		return a, fmt.Errorf("user %s: %w", user, err)
	}
	gid, _, err := findEntry(filepath.Join(root, "etc", "group"), group, 2)
	if err != nil {
		return a, fmt.Errorf("group %s: %w", group, err)
	}
	a.UID, a.GID = uid, gid
	return a, nil
}

// findEntry returns field n (a number) of the line whose first field is
// name, in a colon-separated account file.
func findEntry(path, name string, n int) (int, string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", fmt.Errorf("%w: %s does not exist", ErrNoAccount, path)
	}
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) <= n || fields[0] != name {
			continue
		}
		id, err := strconv.Atoi(fields[n])
		if err != nil || id < 0 {
			return 0, "", fmt.Errorf("%s: %s has an invalid id %q", path, name, fields[n])
		}
		return id, fields[n], nil
	}
	if err := sc.Err(); err != nil {
		return 0, "", fmt.Errorf("read %s: %w", path, err)
	}
	return 0, "", fmt.Errorf("%w: not in %s", ErrNoAccount, path)
}
