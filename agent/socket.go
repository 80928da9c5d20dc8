package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// SocketMode is the local API socket's permission: the agent's user and the
// socket group may connect, nobody else.
const SocketMode fs.FileMode = 0o660

// ErrSocketInUse: something answers on the socket path already.
var ErrSocketInUse = errors.New("agent: socket in use")

// listenSocket creates the local API socket at path with mode 0660, owned by
// group when it is not "" (a name or a number). The socket is bound inside a
// private folder, given its mode and group there, and only then renamed onto
// path, so there is no moment at which other users could connect.
//
// A socket file already at path is removed only when nobody answers on it
// (an agent that crashed left it); a live one is ErrSocketInUse, and a path
// that is not a socket is never removed.
func listenSocket(ctx context.Context, path, group string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("api socket: create %s: %w", dir, err)
	}
	if err := clearStaleSocket(ctx, path); err != nil {
		return nil, err
	}
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("api socket: group %q: %w", group, err)
		}
		gid = g
	}
	tmpDir, err := os.MkdirTemp(dir, ".agent-sock-")
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("api socket: listen: %w", err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it is renamed; Close removes path itself
	fail := func(err error) (*net.UnixListener, error) {
		ul.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, SocketMode); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return ul, nil
}

func clearStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("api socket: %s exists and is not a socket; not removing it", path)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	if c, err := d.DialContext(dctx, "unix", path); err == nil {
		c.Close()
		return fmt.Errorf("api socket %s: another process answers on it: %w", path, ErrSocketInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api socket: remove stale %s: %w", path, err)
	}
	return nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}
