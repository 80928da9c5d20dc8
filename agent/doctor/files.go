package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/keystone-edge/keystone/agent/provision"
	"github.com/keystone-edge/keystone/ota/sign"
)

// account checks the keystone user and group.
func (d *run) account() {
	a, err := provision.LookupAccount(d.env.Root, provision.AccountName, provision.AccountName)
	if err != nil {
		d.add("account", Fail, err.Error(), "create the keystone user and group (the keystone package does)")
		return
	}
	d.add("account", OK, fmt.Sprintf("user %s (uid %d), group %s (gid %d)", a.User, a.UID, a.Group, a.GID), "")
}

// permissions checks the data folder and the device key: modes and owners.
func (d *run) permissions() {
	acct, acctErr := provision.LookupAccount(d.env.Root, provision.AccountName, provision.AccountName)
	var problems, fixes, warns []string
	owner := func(info fs.FileInfo) (uint32, uint32) {
		st := info.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid
	}

	dataDir := d.cfg.DataDir
	info, err := os.Stat(d.env.path(dataDir))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		warns = append(warns, dataDir+" does not exist yet (the agent makes it)")
	case err != nil:
		problems = append(problems, err.Error())
	default:
		perm := info.Mode().Perm()
		if perm&0o002 != 0 {
			problems = append(problems, fmt.Sprintf("%s is mode %04o: anyone may write into it", dataDir, perm))
			fixes = append(fixes, "chmod 0750 "+dataDir)
		} else if perm&0o007 != 0 {
			warns = append(warns, fmt.Sprintf("%s is mode %04o: others may read it (want 0750)", dataDir, perm))
			fixes = append(fixes, "chmod 0750 "+dataDir)
		}
		if uid, gid := owner(info); acctErr == nil && (int(uid) != acct.UID || int(gid) != acct.GID) && uid != 0 {
			problems = append(problems, fmt.Sprintf("%s belongs to %d:%d, not keystone or root", dataDir, uid, gid))
			fixes = append(fixes, "chown keystone:keystone "+dataDir)
		}
	}

	if key := d.cfg.MQTT.KeyFile; key != "" {
		info, err := os.Stat(d.env.path(key))
		switch {
		case err != nil:
			problems = append(problems, "mqtt.key_file: "+err.Error())
			fixes = append(fixes, "provision the device's identity (keystonectl device provision)")
		default:
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				problems = append(problems, fmt.Sprintf("the device key %s is mode %04o: others may read it", key, perm))
				fixes = append(fixes, "chmod 0600 "+key+" (and, since others could read it, consider the key leaked: enroll a new one)")
			}
			if uid, _ := owner(info); acctErr == nil && int(uid) != acct.UID && uid != 0 {
				problems = append(problems, fmt.Sprintf("the device key %s belongs to uid %d, not keystone or root", key, uid))
				fixes = append(fixes, "chown keystone:keystone "+key)
			}
		}
	}
	switch {
	case len(problems) > 0:
		d.add("permissions", Fail, strings.Join(append(problems, warns...), "; "), strings.Join(fixes, "; "))
	case len(warns) > 0:
		d.add("permissions", Warn, strings.Join(warns, "; "), strings.Join(fixes, "; "))
	default:
		d.add("permissions", OK, "the data folder and the device key are private to the agent", "")
	}
}

// lowDisk and tightDisk are the free space below which the disk check
// fails and warns: an artifact download and the database need room.
const (
	lowDisk   = 128 << 20
	tightDisk = 1 << 30
)

// disk checks the free space of the data folder's file system.
func (d *run) disk() {
	p := d.env.path(d.cfg.DataDir)
	for { // the nearest folder that exists: the agent makes data_dir
		if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
			break
		}
		p = filepath.Dir(p)
	}
	avail, total, err := d.env.Statfs(p)
	if err != nil {
		d.add("disk", Fail, "statfs "+p+": "+err.Error(), "")
		return
	}
	msg := fmt.Sprintf("%s free of %s at %s", bytes(avail), bytes(total), d.cfg.DataDir)
	fix := "free space on the file system of " + d.cfg.DataDir + " (or lower artifacts.cache_limit)"
	switch {
	case avail < lowDisk:
		d.add("disk", Fail, msg+": too little for downloads and the database", fix)
	case avail < tightDisk || avail < total/10:
		d.add("disk", Warn, msg+": getting full", fix)
	default:
		d.add("disk", OK, msg, "")
	}
}

func bytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// trust checks that every trusted key loads.
func (d *run) trust() {
	keys := d.cfg.Trust.Keys
	if len(keys) == 0 {
		if d.cfg.Trust.AllowUnsigned {
			d.add("trust", Warn, "no trust.keys and trust.allow_unsigned = true: unsigned recipes run (development mode)",
				"list the ops public keys in trust.keys and remove allow_unsigned")
			return
		}
		d.add("trust", Warn, "no trust.keys: every signed job and recipe is refused", "list the ops public keys in trust.keys")
		return
	}
	var bad []string
	for _, k := range keys {
		if _, err := sign.LoadPublicKey(d.env.path(k)); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		d.add("trust", Fail, strings.Join(bad, "; "), "copy the ops public keys (keystonectl keys generate made NAME.pub) to the paths in trust.keys")
		return
	}
	msg := fmt.Sprintf("%d key(s) load", len(keys))
	if d.cfg.Trust.AllowUnsigned {
		d.add("trust", Warn, msg+", but trust.allow_unsigned = true: unsigned recipes run too", "remove trust.allow_unsigned")
		return
	}
	d.add("trust", OK, msg, "")
}
