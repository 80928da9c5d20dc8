package runner

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestWaitExitNoReapLeavesAZombie: the wait for kernels without pidfds
// sees a child's exit and leaves the child a zombie (its pid held), for a
// child that exits while it waits and for one that was gone before it
// started.
func TestWaitExitNoReapLeavesAZombie(t *testing.T) {
	for _, early := range []bool{false, true} {
		cmd := exec.Command("/bin/sleep", "300")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		if early {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		done := make(chan error, 1)
		go func() { done <- waitExitNoReap(pid) }()
		if !early {
			select {
			case err := <-done:
				t.Fatalf("returned before the child exited: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("early=%v: %v", early, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("early=%v: exit not seen", early)
		}
		st, err := readStat(pid)
		if err != nil || st.State != 'Z' {
			t.Errorf("early=%v: child not left a zombie: %+v, %v", early, st, err)
		}
		_ = cmd.Wait()
	}
}
