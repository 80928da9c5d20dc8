package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultFileSize     = 1 << 20  // 1 MiB
	DefaultComponentCap = 8 << 20  // 8 MiB
	DefaultGlobalCap    = 64 << 20 // 64 MiB
	DefaultTailLines    = 500
	DefaultMaxLineBytes = 4 << 10 // 4 KiB
)

// recordOverhead is the most a line's disk record adds to its text: the
// time stamp, a tag and the newline.
const recordOverhead = len(timeLayout) + len(" [keystone] ") + 1

// Config bounds the logs. Sizes are bytes on disk.
type Config struct {
	// Dir holds every component's files; created if missing. Required.
	Dir string
	// FileSize is the size at which a component's current file is rotated;
	// 0 = DefaultFileSize.
	FileSize int64
	// ComponentCap bounds one component's files (current and rotated) and
	// must be at least FileSize; 0 = DefaultComponentCap (or FileSize when
	// that is larger).
	ComponentCap int64
	// GlobalCap bounds all components' files together and must be at least
	// ComponentCap; 0 = DefaultGlobalCap (or ComponentCap when larger).
	GlobalCap int64
	// TailLines is how many recent lines per component are kept in memory;
	// 0 = DefaultTailLines.
	TailLines int
	// MaxLineBytes splits longer lines into pieces of this size;
	// 0 = DefaultMaxLineBytes. A record must fit in FileSize.
	MaxLineBytes int
	// Now stamps lines; nil = time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, errors.New("logs: Config.Dir is required")
	}
	if c.FileSize == 0 {
		c.FileSize = DefaultFileSize
	}
	if c.ComponentCap == 0 {
		c.ComponentCap = max(DefaultComponentCap, c.FileSize)
	}
	if c.GlobalCap == 0 {
		c.GlobalCap = max(DefaultGlobalCap, c.ComponentCap)
	}
	if c.TailLines == 0 {
		c.TailLines = DefaultTailLines
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = int(min(DefaultMaxLineBytes, c.FileSize-int64(recordOverhead)))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.FileSize < 0 || c.ComponentCap < c.FileSize || c.GlobalCap < c.ComponentCap:
		return c, fmt.Errorf("logs: need 0 < FileSize (%d) <= ComponentCap (%d) <= GlobalCap (%d)", c.FileSize, c.ComponentCap, c.GlobalCap)
	case c.MaxLineBytes < 1 || int64(c.MaxLineBytes+recordOverhead) > c.FileSize:
		return c, fmt.Errorf("logs: MaxLineBytes %d plus %d bytes of stamp must fit in FileSize %d", c.MaxLineBytes, recordOverhead, c.FileSize)
	case c.TailLines < 0:
		return c, fmt.Errorf("logs: TailLines %d is negative", c.TailLines)
	}
	return c, nil
}

// ErrClosed is returned by writes after Manager.Close.
var ErrClosed = errors.New("logs: closed")

// Manager owns the log directory and the budget shared by its components.
// It is safe for concurrent use.
type Manager struct {
	cfg Config

	mu     sync.Mutex
	logs   map[string]*Log // by component, including ones only found on disk
	used   int64           // bytes of every file in Dir that belongs to a component
	closed bool
}

// Open opens the log directory, accounting for files an earlier run left
// (rotated files are renumbered 1..N if there are gaps) and trimming them
// to the caps.
func Open(cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("open logs: %w", err)
	}
	m := &Manager{cfg: cfg, logs: map[string]*Log{}}
	if err := m.scan(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.logs {
		if _, err := m.makeRoom(l, 0); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// scan finds existing files: <name>.log and <name>.log.<n>.
func (m *Manager) scan() error {
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return fmt.Errorf("open logs: %w", err)
	}
	rotated := map[string][]int{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name, idx, ok := parseFileName(e.Name())
		if !ok {
			continue
		}
		l := m.entry(name)
		if idx == 0 {
			st, err := e.Info()
			if err != nil {
				return fmt.Errorf("open logs: %w", err)
			}
			l.active = st.Size()
			m.used += l.active
			continue
		}
		rotated[name] = append(rotated[name], idx)
	}
	for name, idxs := range rotated {
		l := m.logs[name]
		slices.Sort(idxs)
		for want, have := range idxs {
			// Renumber 1..N in ascending order; a target is always free.
			from, to := l.path(have), l.path(want+1)
			if from != to {
				if err := os.Rename(from, to); err != nil {
					return fmt.Errorf("open logs: renumber %s: %w", from, err)
				}
			}
			st, err := os.Stat(to)
			if err != nil {
				return fmt.Errorf("open logs: %w", err)
			}
			l.rotated = append(l.rotated, st.Size())
			m.used += st.Size()
		}
	}
	return nil
}

// parseFileName splits "<name>.log" (index 0) and "<name>.log.<n>" (n ≥ 1).
func parseFileName(file string) (name string, idx int, ok bool) {
	if base, found := strings.CutSuffix(file, ".log"); found {
		return base, 0, checkName(base) == nil
	}
	i := strings.LastIndex(file, ".log.")
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(file[i+len(".log."):])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return file[:i], n, checkName(file[:i]) == nil
}

// checkName accepts a component name usable as a file name prefix.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("logs: %q is not a usable component name", name)
	}
	return nil
}

// entry returns the component's Log, creating it; m.mu held or not yet shared.
func (m *Manager) entry(name string) *Log {
	l, ok := m.logs[name]
	if !ok {
		l = &Log{m: m, name: name, ring: newRing(m.cfg.TailLines), subs: map[*follower]struct{}{}}
		m.logs[name] = l
	}
	return l
}

// Log returns the component's log, created on first use.
func (m *Manager) Log(component string) (*Log, error) {
	if err := checkName(component); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.entry(component), nil
}

// Known reports whether the manager has a log for component: one written
// since it opened, or files it found in its folder. It never creates one.
func (m *Manager) Known(component string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.logs[component]
	return ok
}

// Remove deletes a component's files and forgets it (for a component that
// is no longer deployed). Its followers' channels are closed.
func (m *Manager) Remove(component string) error {
	if err := checkName(component); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.logs[component]
	if !ok {
		return nil
	}
	if err := l.closeFile(); err != nil {
		return err
	}
	for len(l.rotated) > 0 {
		if err := m.deleteOldest(l); err != nil {
			return err
		}
	}
	if err := os.Remove(l.path(0)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove logs of %s: %w", component, err)
	}
	m.used -= l.active
	l.active = 0
	l.endFollowers()
	l.removed = true
	delete(m.logs, component)
	return nil
}

// Usage is a snapshot of disk use.
type Usage struct {
	Bytes      int64                     // all components' files
	Components map[string]ComponentUsage // by component
}

// ComponentUsage is one component's share.
type ComponentUsage struct {
	Bytes        int64 // current and rotated files
	Files        int   // how many files
	DroppedBytes int64 // line bytes never written for lack of space, ever
	EvictedBytes int64 // bytes of its rotated files deleted to keep the global budget
}

// Usage reports current disk use and what was dropped.
func (m *Manager) Usage() Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := Usage{Bytes: m.used, Components: map[string]ComponentUsage{}}
	for name, l := range m.logs {
		files := len(l.rotated)
		if l.active > 0 || l.f != nil {
			files++
		}
		u.Components[name] = ComponentUsage{Bytes: l.total(), Files: files, DroppedBytes: l.dropped, EvictedBytes: l.evicted}
	}
	return u
}

// Close closes every file and ends every follower. Later writes return
// ErrClosed; the tails stay readable.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for _, l := range m.logs {
		if err := l.closeFile(); err != nil {
			errs = append(errs, err)
		}
		l.endFollowers()
	}
	return errors.Join(errs...)
}

// path is the file of the component with rotation index idx (0 = current).
func (l *Log) path(idx int) string {
	if idx == 0 {
		return filepath.Join(l.m.cfg.Dir, l.name+".log")
	}
	return filepath.Join(l.m.cfg.Dir, l.name+".log."+strconv.Itoa(idx))
}
