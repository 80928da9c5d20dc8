package agent

import (
	"os"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want float64
	}{
		{"1234 (sleep) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 5000 1000 100\n", 3},
		{"77 (a b) c)) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1\n", 0.1},
		{"garbage", 0},
		{"1 (x) S 1 2", 0},
	} {
		if got := parseStatCPU([]byte(tc.stat)); got != tc.want {
			t.Errorf("parseStatCPU(%q) = %v, want %v", tc.stat, got, tc.want)
		}
	}
	if processCPUSeconds(os.Getpid()) <= 0 {
		t.Error("this test process has used no CPU?")
	}
	if processCPUSeconds(-1) != 0 {
		t.Error("a pid that cannot exist has CPU time")
	}
}
