package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// dialAsNobody connects to path from a process running as nobody:nogroup
// (uid and gid 65534, no supplementary groups) and returns its exit code.
func dialAsNobody(t *testing.T, path string) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: running a client as another user needs root; this suite runs as root in CI")
	}
	// The test binary must be reachable by nobody: copy it into a folder
	// everyone may enter.
	dir := shortDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "dialer")
	copyFile(t, self, bin, 0o755)

	cmd := exec.Command(bin)
	cmd.Env = []string{dialHelperEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		t.Logf("client as nobody: %s", strings.TrimSpace(string(out)))
		return ee.ExitCode()
	default:
		t.Fatalf("run client as nobody: %v", err)
		return -1
	}
}

func copyFile(t *testing.T, from, to string, mode fs.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// The socket is 0660: its owner and group may connect, other users may not,
// even when the folder it is in is open to everyone.
func TestSocketRefusesOtherUsers(t *testing.T) {
	cfg := agentConfig(t, "")
	a := startAgent(t, cfg, Options{})
	path := a.addrs.Socket

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != SocketMode {
		t.Fatalf("socket mode = %v, want a socket with %v", fi.Mode(), SocketMode)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Gid) != os.Getegid() {
		t.Errorf("socket group = %d, want the agent's own group %d when socket_group is unset", st.Gid, os.Getegid())
	}
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil { // only the socket's own mode may stop them
		t.Fatal(err)
	}
	if code := dialAsNobody(t, path); code != exitDialDenied {
		t.Fatalf("a client running as nobody exited %d, want %d (permission denied)", code, exitDialDenied)
	}
	// The owner still connects.
	if err := a.client.Health(context.Background()); err != nil {
		t.Fatalf("health as the socket's owner: %v", err)
	}
}

// api.socket_group hands the socket to a group whose members may use it.
func TestSocketGroupMayConnect(t *testing.T) {
	cfg := agentConfig(t, "")
	cfg.API.SocketGroup = fmt.Sprint(nobodyID)
	a := startAgent(t, cfg, Options{})
	path := a.addrs.Socket

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != nobodyID {
		t.Fatalf("socket group = %d, want %d", gid, nobodyID)
	}
	if fi.Mode().Perm() != SocketMode {
		t.Fatalf("socket mode = %v, want %v", fi.Mode().Perm(), SocketMode)
	}
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if code := dialAsNobody(t, path); code != 0 {
		t.Fatalf("a member of the socket group could not connect (exit %d)", code)
	}
}

// A socket file left by a crashed agent is replaced; a live one is not, and
// neither is a path that is not a socket.
func TestSocketStaleLiveAndForeign(t *testing.T) {
	ctx := context.Background()
	dir := shortDir(t)

	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody answers: what a crash leaves
	ul, err := listenSocket(ctx, stale, "")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer ul.Close()
	if c, err := net.Dial("unix", stale); err != nil {
		t.Fatalf("new socket does not answer: %v", err)
	} else {
		c.Close()
	}

	if _, err := listenSocket(ctx, stale, ""); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second listen on a live socket: %v, want ErrSocketInUse", err)
	}

	foreign := filepath.Join(dir, "file")
	if err := os.WriteFile(foreign, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(ctx, foreign, ""); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen over a regular file: %v, want a refusal", err)
	}
	if b, err := os.ReadFile(foreign); err != nil || string(b) != "keep me" {
		t.Fatalf("the regular file was touched: %q, %v", b, err)
	}
	// No temporary folder is left beside the socket.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".agent-sock-") {
			t.Errorf("temporary folder %s left behind", e.Name())
		}
	}
}
