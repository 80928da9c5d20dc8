package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestProcStartTicks(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	mine, err := ProcStartTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	child, err := ProcStartTicks(cmd.Process.Pid)
	if err != nil || child < mine {
		t.Fatalf("child ticks %d (%v) before parent's %d", child, err, mine)
	}
	// The same value as field 22 read by hand.
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if fields[19] != fmt.Sprint(child) {
		t.Fatalf("field 22 = %s, ProcStartTicks = %d", fields[19], child)
	}
	if _, err := ProcStartTicks(1 << 30); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("missing pid: %v", err)
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want procStat
		ok   bool
	}{
		{"42 (sleep) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 123 4 5", procStat{"sleep", 'S', 1, 42, 98765}, true},
		{"7 (a) b) (c) Z 3 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0", procStat{"a) b) (c", 'Z', 3, 9, 555}, true},
		{"7 (x y) R 3 9", procStat{}, false},
		{"garbage", procStat{}, false},
		{"7 (x) R p 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555", procStat{}, false},
	} {
		got, err := parseStat([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStat(%q) = %+v, %v", tc.in, got, err)
		}
	}
}
