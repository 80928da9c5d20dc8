package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// makeRoom makes n more bytes fit in the component's current file, its cap
// and the global budget, rotating and deleting files as needed. It reports
// false when even that cannot make the bytes fit. m.mu is held.
//
// Order: rotate the current file when n would push it past FileSize; delete
// the component's oldest rotated files past ComponentCap; then, while the
// budget is exceeded, delete the oldest rotated file of the biggest user,
// and when no rotated file is left anywhere rotate the writer's own current
// file (so that it becomes deletable). Other components' current files are
// never touched.
func (m *Manager) makeRoom(l *Log, n int64) (bool, error) {
	c := m.cfg
	if l.active > 0 && l.active+n > c.FileSize {
		if err := m.rotate(l); err != nil {
			return false, err
		}
	}
	for l.total()+n > c.ComponentCap && len(l.rotated) > 0 {
		if err := m.deleteOldest(l); err != nil {
			return false, err
		}
	}
	for m.used+n > c.GlobalCap {
		if v := m.biggestWithRotated(); v != nil {
			size := v.rotated[len(v.rotated)-1]
			if err := m.deleteOldest(v); err != nil {
				return false, err
			}
			v.evicted += size
			continue
		}
		if l.active > 0 {
			if err := m.rotate(l); err != nil {
				return false, err
			}
			continue
		}
		return false, nil
	}
	return true, nil
}

// biggestWithRotated is the component using the most bytes among those that
// have a rotated file (ties: the first name), or nil.
func (m *Manager) biggestWithRotated() *Log {
	var best *Log
	for _, l := range m.logs {
		if len(l.rotated) == 0 {
			continue
		}
		if best == nil || l.total() > best.total() || l.total() == best.total() && l.name < best.name {
			best = l
		}
	}
	return best
}

// rotate turns the current file into <name>.log.1, shifting older ones up.
func (m *Manager) rotate(l *Log) error {
	if err := l.closeFile(); err != nil {
		return err
	}
	for i := len(l.rotated); i >= 1; i-- {
		if err := os.Rename(l.path(i), l.path(i+1)); err != nil {
			return fmt.Errorf("rotate log of %s: %w", l.name, err)
		}
	}
	if err := os.Rename(l.path(0), l.path(1)); err != nil {
		return fmt.Errorf("rotate log of %s: %w", l.name, err)
	}
	l.rotated = append([]int64{l.active}, l.rotated...)
	l.active = 0
	return nil
}

// deleteOldest deletes the component's oldest rotated file.
func (m *Manager) deleteOldest(l *Log) error {
	idx := len(l.rotated)
	if err := os.Remove(l.path(idx)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete old log of %s: %w", l.name, err)
	}
	m.used -= l.rotated[idx-1]
	l.rotated = l.rotated[:idx-1]
	return nil
}
