package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
)

// Mode is how the host mounts cgroups.
type Mode int

const (
	ModeUnavailable Mode = iota // no cgroups, or turned off by configuration
	ModeLegacy                  // v1 hierarchies only
	ModeHybrid                  // v1 controllers plus a controller-less v2 mount at <mount>/unified
	ModeUnified                 // v2 only
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case ModeLegacy:
		return "legacy"
	case ModeHybrid:
		return "hybrid"
	case ModeUnified:
		return "unified"
	}
	return "unavailable"
}

// Where the kernel's hierarchies are mounted; containerd/cgroups assumes the
// same places.
const (
	mountRoot          = "/sys/fs/cgroup"
	hybridUnifiedMount = "/sys/fs/cgroup/unified"
)

// DefaultRoot is the parent group of every component's group when
// Config.Root is empty.
const DefaultRoot = "/keystone"

// v1Controllers are the v1 hierarchies a group joins: cpu, memory and pids
// for the limits, cpuacct for CPU time on legacy hosts.
var v1Controllers = []cgroup1.Name{cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Pids}

// Config says where groups go.
type Config struct {
	// Root is the parent group of every component's group, an absolute
	// cgroup path such as "/keystone" (the same in every hierarchy); "" =
	// DefaultRoot. Tests use a unique root so they never collide.
	Root string
	// Disabled turns cgroups off: groups are never created and every
	// requested limit comes back as Unapplied. false = use what the host has.
	Disabled bool
}

// Manager creates and finds component groups under one root. It holds no
// mutable state and is safe for concurrent use.
type Manager struct {
	root    string
	mode    Mode
	v1      map[cgroup1.Name]cgroup1.Subsystem // the host's v1 hierarchies we use
	v2Mount string                             // "" when the host has no v2 hierarchy
}

// NewManager looks at the host's cgroup mounts once and returns a Manager
// for groups under cfg.Root.
func NewManager(cfg Config) (*Manager, error) {
	root := cfg.Root
	if root == "" {
		root = DefaultRoot
	}
	if err := checkGroupPath(root); err != nil {
		return nil, fmt.Errorf("cgroup root %q: %w", root, err)
	}
	m := &Manager{root: path.Clean(root), v1: map[cgroup1.Name]cgroup1.Subsystem{}}
	if cfg.Disabled {
		return m, nil
	}
	switch cgroups.Mode() {
	case cgroups.Unified:
		m.mode, m.v2Mount = ModeUnified, mountRoot
	case cgroups.Hybrid:
		m.mode, m.v2Mount = ModeHybrid, hybridUnifiedMount
	case cgroups.Legacy:
		m.mode = ModeLegacy
	default:
		return m, nil
	}
	if m.mode != ModeUnified {
		subs, err := cgroup1.Default()
		if err != nil {
			return nil, fmt.Errorf("find cgroup v1 hierarchies: %w", err)
		}
		for _, s := range subs {
			if slices.Contains(v1Controllers, s.Name()) {
				m.v1[s.Name()] = s
			}
		}
	}
	return m, nil
}

// Mode is the layout the Manager uses.
func (m *Manager) Mode() Mode { return m.mode }

// Root is the parent group of every group the Manager creates.
func (m *Manager) Root() string { return m.root }

// Create makes the group <root>/<name>, applies lim, and returns it with
// the limits that could not be enforced. A host without cgroups gives a
// group that tracks nothing (Tracked() == false) and every requested limit
// as Unapplied; that is not an error, and neither is a hierarchy where the
// group cannot be created (its limits come back as Unapplied). The error is
// ErrBusy when the group already exists and still holds processes.
//
// Create is CreateV2 followed by CreateV1.
func (m *Manager) Create(name string, lim Limits) (*Group, []Unapplied, error) {
	g, unapplied, err := m.CreateV2(name, lim)
	if err != nil {
		return nil, nil, err
	}
	return g, append(unapplied, m.CreateV1(g, lim)...), nil
}

// CreateV2 is the first half of Create: it refuses a group that still
// holds processes (ErrBusy) and makes the group's v2 part (with its limits
// on a unified host; for tracking only on a hybrid one). A process can be
// started right into it (see Group.OpenV2Dir) while CreateV1, which must
// follow before the group is used otherwise, makes the v1 part.
func (m *Manager) CreateV2(name string, lim Limits) (*Group, []Unapplied, error) {
	if err := checkName(name); err != nil {
		return nil, nil, fmt.Errorf("create cgroup %q: %w", name, err)
	}
	if m.mode == ModeUnavailable {
		return &Group{}, lim.unapplied(ErrUnavailable), nil
	}
	g := &Group{path: m.root + "/" + name, v1: map[cgroup1.Name]cgroup1.Cgroup{}, v1Dirs: map[cgroup1.Name]string{}}
	if err := m.checkEmpty(g.path); err != nil {
		return nil, nil, fmt.Errorf("create cgroup %s: %w", g.path, err)
	}
	switch m.mode {
	case ModeUnified:
		unapplied, err := g.createV2(m.v2Mount, lim, true)
		if err != nil {
			// No group at all (say, a read-only cgroupfs): run untracked
			// and unlimited, and say which limits that costs.
			return &Group{}, lim.unapplied(fmt.Errorf("%w: %v", ErrUnavailable, err)), nil
		}
		return g, unapplied, nil
	case ModeHybrid:
		// The unified mount has no controllers here: it only tracks and
		// kills. Without it the v1 groups still track.
		if _, err := g.createV2(m.v2Mount, Limits{}, false); err != nil {
			g.v2 = nil
		}
	}
	return g, nil, nil
}

// CreateV1 is the second half of Create: it makes the v1 part of g (from
// CreateV2 of the same Manager) with lim, on a hybrid or legacy host, and
// returns the limits that could not be enforced there. It touches only the
// group's v1 part, so it may run while a process is being started into the
// v2 part.
func (m *Manager) CreateV1(g *Group, lim Limits) []Unapplied {
	if m.mode != ModeHybrid && m.mode != ModeLegacy || g.path == "" {
		return nil
	}
	return g.createV1(m.v1, lim)
}

// Open finds an existing group by the path Group.Path returned, as recorded
// before an agent restart. The path must lie under the Manager's root, so a
// damaged record can never point at someone else's group. The error wraps
// fs.ErrNotExist when the group is gone from every hierarchy.
func (m *Manager) Open(groupPath string) (*Group, error) {
	if err := checkGroupPath(groupPath); err != nil {
		return nil, fmt.Errorf("open cgroup %q: %w", groupPath, err)
	}
	clean := path.Clean(groupPath)
	if !strings.HasPrefix(clean, m.root+"/") {
		return nil, fmt.Errorf("open cgroup %q: not under the agent's root %s", groupPath, m.root)
	}
	g := &Group{path: clean, v1: map[cgroup1.Name]cgroup1.Cgroup{}, v1Dirs: map[cgroup1.Name]string{}}
	if m.v2Mount != "" && isDir(filepath.Join(m.v2Mount, clean)) {
		if err := g.loadV2(m.v2Mount); err != nil {
			return nil, err
		}
	}
	for name, s := range m.v1 {
		if !isDir(filepath.Join(subsystemRoot(s), clean)) {
			continue
		}
		cg, err := cgroup1.Load(cgroup1.StaticPath(clean), cgroup1.WithHierarchy(single(s)))
		if err != nil {
			return nil, fmt.Errorf("open cgroup %s (%s): %w", clean, name, err)
		}
		g.v1[name], g.v1Dirs[name] = cg, filepath.Join(subsystemRoot(s), clean)
	}
	if g.v2 == nil && len(g.v1) == 0 {
		return nil, fmt.Errorf("open cgroup %s: %w", clean, fs.ErrNotExist)
	}
	return g, nil
}

// Groups lists the path of every group directly under the root, in any
// hierarchy the Manager uses, sorted: after an agent crash, what is there
// was made by an earlier agent. A host without cgroups has none.
func (m *Manager) Groups() ([]string, error) {
	var out []string
	for _, d := range m.Dirs(m.root) {
		entries, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list cgroups under %s: %w", d, err)
		}
		for _, e := range entries {
			if e.IsDir() && checkName(e.Name()) == nil {
				out = append(out, m.root+"/"+e.Name())
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Prune removes the root group from every hierarchy when no group is left
// under it. A root that still has groups is left alone without error.
func (m *Manager) Prune() error {
	var errs []error
	for _, d := range m.Dirs(m.root) {
		err := os.Remove(d)
		if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.ENOTEMPTY) {
			continue
		}
		errs = append(errs, fmt.Errorf("prune cgroup %s: %w", d, err))
	}
	return errors.Join(errs...)
}

// Dirs is where groupPath lives in each hierarchy the Manager uses, for
// reading its files (tests, doctor).
func (m *Manager) Dirs(groupPath string) []string {
	var dirs []string
	if m.v2Mount != "" {
		dirs = append(dirs, filepath.Join(m.v2Mount, groupPath))
	}
	for _, s := range m.v1 {
		dirs = append(dirs, filepath.Join(subsystemRoot(s), groupPath))
	}
	return dirs
}

// checkEmpty refuses a group path that exists somewhere with processes in it.
func (m *Manager) checkEmpty(groupPath string) error {
	for _, d := range m.Dirs(groupPath) {
		pids, err := readProcs(d)
		if err != nil {
			return err
		}
		if len(pids) > 0 {
			return fmt.Errorf("%w (%d in %s); stop them first", ErrBusy, len(pids), d)
		}
	}
	return nil
}

// checkName accepts one path element that is a sane directory name.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return errors.New("name must be one non-empty path element")
	}
	return nil
}

// checkGroupPath accepts an absolute cgroup path without dot-dot elements.
func checkGroupPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return errors.New("must be an absolute path below /")
	}
	for _, e := range strings.Split(p[1:], "/") {
		if e == ".." || strings.ContainsRune(e, 0) {
			return errors.New("must not contain .. or NUL")
		}
	}
	return nil
}

// single is a hierarchy of one subsystem.
func single(s cgroup1.Subsystem) cgroup1.Hierarchy {
	return func() ([]cgroup1.Subsystem, error) { return []cgroup1.Subsystem{s}, nil }
}

// subsystemRoot is the directory where a v1 subsystem's hierarchy is mounted.
func subsystemRoot(s cgroup1.Subsystem) string {
	if p, ok := s.(interface{ Path(string) string }); ok {
		return p.Path("/")
	}
	return filepath.Join(mountRoot, string(s.Name()))
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
