package cgroup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// newTestManager returns a Manager under a root of its own, removed after
// the test.
func newTestManager(t *testing.T, disabled bool) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: cgroup tests create control groups and need root")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	m, err := NewManager(Config{Root: "/keystone-test-" + hex.EncodeToString(b), Disabled: disabled})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Prune(); err != nil {
			t.Errorf("prune: %v", err)
		}
		for _, d := range m.Dirs(m.root) {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("root group %s left behind", d)
			}
		}
	})
	return m
}

func readTrim(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// startSleeper starts a child the test owns and reaps.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func TestCreateAppliesLimitsTracksKillsAndDeletes(t *testing.T) {
	m := newTestManager(t, false)
	if m.Mode() == ModeUnavailable {
		t.Fatal("this host has cgroups; the runner's acceptance depends on them")
	}
	g, unapplied, err := m.Create("com.example.limits", Limits{CPUQuotaPercent: 50, MemoryBytes: 32 << 20, Pids: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(unapplied) != 0 {
		t.Fatalf("unapplied limits on a host with cgroups: %v", unapplied)
	}
	if g.Path() != m.Root()+"/com.example.limits" {
		t.Fatalf("path = %q", g.Path())
	}
	switch m.Mode() {
	case ModeHybrid, ModeLegacy:
		dir := func(ctrl string) string { return filepath.Join(mountRoot, ctrl, g.Path()) }
		if got := readTrim(t, filepath.Join(dir("cpu"), "cpu.cfs_quota_us")); got != "50000" {
			t.Errorf("cpu.cfs_quota_us = %s, want 50000", got)
		}
		if got := readTrim(t, filepath.Join(dir("memory"), "memory.limit_in_bytes")); got != "33554432" {
			t.Errorf("memory.limit_in_bytes = %s", got)
		}
		if got := readTrim(t, filepath.Join(dir("pids"), "pids.max")); got != "7" {
			t.Errorf("pids.max = %s", got)
		}
		if m.Mode() == ModeHybrid && !isDir(filepath.Join(hybridUnifiedMount, g.Path())) {
			t.Error("hybrid host: no tracking group in the unified hierarchy")
		}
	case ModeUnified:
		dir := filepath.Join(mountRoot, g.Path())
		if got := readTrim(t, filepath.Join(dir, "memory.max")); got != "33554432" {
			t.Errorf("memory.max = %s", got)
		}
		if got := readTrim(t, filepath.Join(dir, "pids.max")); got != "7" {
			t.Errorf("pids.max = %s", got)
		}
		if got := readTrim(t, filepath.Join(dir, "cpu.max")); got != "50000 100000" {
			t.Errorf("cpu.max = %s", got)
		}
	}

	cmd := startSleeper(t)
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	procs, err := g.Procs()
	if err != nil || !slices.Equal(procs, []int{cmd.Process.Pid}) {
		t.Fatalf("procs = %v, %v; want [%d]", procs, err, cmd.Process.Pid)
	}
	if _, _, err := m.Create("com.example.limits", Limits{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second create over a live group: err = %v, want ErrBusy", err)
	}
	if err := g.Delete(); err == nil {
		t.Fatal("delete of a group with a live process succeeded")
	}
	if _, err := g.CPUSeconds(); err != nil {
		t.Fatalf("cpu seconds: %v", err)
	}

	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.String() != "signal: killed" {
		t.Fatalf("sleeper after Kill: %v", err)
	}
	if procs, err := g.Procs(); err != nil || len(procs) != 0 {
		t.Fatalf("procs after kill = %v, %v", procs, err)
	}
	if n, err := g.OOMKills(); err != nil || n != 0 {
		t.Fatalf("oom kills = %d, %v; want 0", n, err)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Dirs(g.path) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after Delete", d)
		}
	}
	if err := g.Delete(); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestOpenFindsRecordedGroupAndRefusesForeignPaths(t *testing.T) {
	m := newTestManager(t, false)
	g, _, err := m.Create("com.example.open", Limits{Pids: 20})
	if err != nil {
		t.Fatal(err)
	}
	cmd := startSleeper(t)
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}

	again, err := m.Open(g.Path())
	if err != nil {
		t.Fatal(err)
	}
	if procs, _ := again.Procs(); !slices.Equal(procs, []int{cmd.Process.Pid}) {
		t.Fatalf("reopened group procs = %v", procs)
	}
	if err := again.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if err := again.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Open(g.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a deleted group: %v, want ErrNotExist", err)
	}
	for _, bad := range []string{"/system.slice", m.Root(), m.Root() + "/../x", "relative", m.Root() + "x/y"} {
		if _, err := m.Open(bad); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want a refusal", bad, err)
		}
	}
}

func TestDisabledRunsWithoutGroupAndReportsEveryLimit(t *testing.T) {
	m := newTestManager(t, true)
	g, unapplied, err := m.Create("com.example.none", Limits{CPUQuotaPercent: 10, MemoryBytes: 1 << 20, Pids: 3})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range unapplied {
		if !errors.Is(u, ErrUnavailable) {
			t.Errorf("%v does not wrap ErrUnavailable", u)
		}
		names = append(names, u.Limit)
	}
	if want := []string{LimitCPUQuota, LimitMemory, LimitPids}; !slices.Equal(names, want) {
		t.Fatalf("unapplied = %v, want %v", names, want)
	}
	if !strings.Contains(unapplied[1].Error(), "memory_limit=1048576 bytes not enforced") {
		t.Errorf("message = %q", unapplied[1].Error())
	}
	if g.Tracked() || g.Path() != "" {
		t.Fatal("a group on a host without cgroups claims to track")
	}
	if err := g.Add(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if procs, err := g.Procs(); err != nil || procs != nil {
		t.Fatalf("procs = %v, %v", procs, err)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
}

func TestCreateRefusesBadNames(t *testing.T) {
	m := newTestManager(t, false)
	for _, name := range []string{"", ".", "..", "a/b", "x\x00"} {
		if _, _, err := m.Create(name, Limits{}); err == nil {
			t.Errorf("Create(%q) accepted", name)
		}
	}
	if _, err := NewManager(Config{Root: "relative"}); err == nil {
		t.Error("relative root accepted")
	}
}

// Groups lists what is under the root, from every hierarchy, once each.
func TestGroupsListsEveryGroupUnderTheRoot(t *testing.T) {
	m := newTestManager(t, false)
	if got, err := m.Groups(); err != nil || len(got) != 0 {
		t.Fatalf("groups of a fresh root: %v, %v", got, err)
	}
	var made []*Group
	for _, name := range []string{"com.example.b", "com.example.a"} {
		g, _, err := m.Create(name, Limits{Pids: 5})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, g)
	}
	got, err := m.Groups()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{m.Root() + "/com.example.a", m.Root() + "/com.example.b"}; !slices.Equal(got, want) {
		t.Fatalf("groups = %v, want %v", got, want)
	}
	for _, g := range made {
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := m.Groups(); err != nil || len(got) != 0 {
		t.Fatalf("groups after delete: %v, %v", got, err)
	}
}
