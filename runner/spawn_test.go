package runner

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The spawner threads carry no_new_privs, the default filter and, for
// the moment of a fork, a component's v1 groups; nothing of it may reach
// another thread of the agent. After direct starts of every kind, each
// other thread of this process has neither flag nor filter, and every
// thread (the spawners too) is back in this process's own groups.
func TestSpawnerKeepsItsConfinementsToItself(t *testing.T) {
	e := newEnv(t, "", false)
	e.path = "direct"
	for i, spec := range []ProcessSpec{
		{Command: "/bin/sleep", Args: []string{"300"}, NoNewPrivileges: true, Seccomp: SeccompDefault, PidsLimit: 10},
		{Command: "/bin/sleep", Args: []string{"300"}, NoNewPrivileges: false, Seccomp: SeccompDefault, MemoryLimitBytes: 64 << 20},
		{Command: "/bin/sleep", Args: []string{"300"}, NoNewPrivileges: true},
		{Command: "/bin/sleep", Args: []string{"300"}},
	} {
		spec.Component = fmt.Sprintf("com.example.spawned%d", i)
		p := e.start(t, spec)
		requireInGroup(t, e, spec.Component, strings.Split(strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/cgroup", p.Pid()))), "\n"))
	}

	spawnerTids := map[int]bool{}
	spawners.mu.Lock()
	for kind, s := range spawners.all {
		if err := s.failed(); err != nil {
			t.Errorf("spawner %+v: %v", kind, err)
		}
		spawnerTids[s.tid] = true
	}
	spawners.mu.Unlock()
	if len(spawnerTids) != 4 {
		t.Fatalf("%d spawner threads, want one for each of the 4 kinds", len(spawnerTids))
	}
	own := readFile(t, "/proc/self/cgroup")
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if got := readFile(t, "/proc/self/task/"+task.Name()+"/cgroup"); got != own {
			t.Errorf("thread %d (spawner %v) is in\n%s\nnot in the process's groups\n%s", tid, spawnerTids[tid], got, own)
		}
		if spawnerTids[tid] {
			continue
		}
		for _, prefix := range []string{"NoNewPrivs:", "Seccomp:"} {
			if got := statusLine(t, tid, prefix); !strings.HasSuffix(got, "\t0") {
				t.Errorf("thread %d: %q: a spawner's confinement reached another thread", tid, got)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// homeTasks finds the spawner's own group in the hierarchy of a
// component's tasks file by the hierarchy's mount name, including
// co-mounted controllers and named hierarchies, and gives up on a file
// that is not the component's.
func TestHomeTasks(t *testing.T) {
	home := map[string]string{"cpu": "/system.slice/keystone.service", "cpuacct": "/system.slice/keystone.service", "memory": "/", "systemd": "/system.slice/keystone.service"}
	for tasks, want := range map[string]string{
		"/sys/fs/cgroup/memory/ks-root/com.example.a/tasks":        "/sys/fs/cgroup/memory/tasks",
		"/sys/fs/cgroup/cpu,cpuacct/ks-root/com.example.a/tasks":   "/sys/fs/cgroup/cpu,cpuacct/system.slice/keystone.service/tasks",
		"/sys/fs/cgroup/cpu/ks-root/com.example.a/tasks":           "/sys/fs/cgroup/cpu/system.slice/keystone.service/tasks",
		"/sys/fs/cgroup/systemd/ks-root/com.example.a/tasks":       "/sys/fs/cgroup/systemd/system.slice/keystone.service/tasks",
		"/sys/fs/cgroup/pids/ks-root/com.example.a/tasks":          "", // no such hierarchy in home
		"/sys/fs/cgroup/memory/ks-root/com.example.other/tasks":    "", // not the component's file
		"/sys/fs/cgroup/memory/ks-root/com.example.a/cgroup.procs": "",
	} {
		got, ok := homeTasks(tasks, "/ks-root/com.example.a", home)
		if ok != (want != "") || got != want {
			t.Errorf("homeTasks(%s) = %q, %v; want %q", tasks, got, ok, want)
		}
	}
}
