package svcmgr

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// notifyBufferMax is systemd's NOTIFY_BUFFER_MAX: longer datagrams are
// truncated and dropped.
const notifyBufferMax = 4096

// datagram is one message read from the notify socket; pid is 0 when it
// came without credentials or was truncated (systemd drops those).
type datagram struct {
	time time.Time
	pid  int
	msg  string
}

// listenNotify opens the notify socket, a datagram socket at dir/notify
// with SO_PASSCRED, so that every message carries its sender's pid
// whether or not the sender attached credentials; NotifyAccess=main
// needs it.
func listenNotify(dir string) (*net.UnixConn, string, error) {
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, "", fmt.Errorf("listen on notify socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("notify socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		conn.Close()
		return nil, "", fmt.Errorf("notify socket: SO_PASSCRED: %w", errors.Join(err, serr))
	}
	return conn, path, nil
}

// watchNotify tells the actor, on readable, whenever datagrams wait on
// conn, and waits for the actor to have read them; it returns once conn is
// closed or quit is closed. Only the actor reads (recvNotify), so that it
// can drain the socket before it acts on an exit: a process that sends
// READY=1 or STOPPING=1 and exits at once is seen doing it in that order,
// as systemd dispatches notifications before SIGCHLD.
func watchNotify(conn *net.UnixConn, readable chan<- struct{}, quit <-chan struct{}) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return
	}
	var peek [1]byte
	for {
		err := raw.Read(func(fd uintptr) bool {
			_, _, err := unix.Recvfrom(int(fd), peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			return !errors.Is(err, unix.EAGAIN) // anything else is for recvNotify to see
		})
		if err != nil {
			return
		}
		select {
		case readable <- struct{}{}:
		case <-quit:
			return
		}
	}
}

// recvNotify reads one waiting datagram without blocking; false when none
// waits. Descriptors a sender passed are closed (FDSTORE=1 is not
// supported). A datagram without credentials or truncated gets pid 0.
func recvNotify(conn *net.UnixConn) (datagram, bool) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return datagram{}, false
	}
	buf := make([]byte, notifyBufferMax)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*253))
	var n, oobn, flags int
	var rerr error
	if err := raw.Control(func(fd uintptr) {
		for {
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
			if !errors.Is(rerr, unix.EINTR) {
				return
			}
		}
	}); err != nil || rerr != nil {
		return datagram{}, false
	}
	d := datagram{time: time.Now(), msg: string(buf[:n])}
	cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for i := range cmsgs {
		if fds, err := unix.ParseUnixRights(&cmsgs[i]); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		if cred, err := unix.ParseUnixCredentials(&cmsgs[i]); err == nil {
			d.pid = int(cred.Pid)
		}
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		d.pid = 0
	}
	return d, true
}
