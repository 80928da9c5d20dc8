package plugin

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// textfileMode is the mode of a written textfile: node_exporter often runs
// as another user.
const textfileMode = 0o644

// textfilePath is <textfile_dir>/<component>.prom.
func (e *Exporter) textfilePath(name string) string {
	return filepath.Join(e.textfileDir, name+".prom")
}

// writeTextfile writes a plugin's series in the Prometheus text format to
// its textfile atomically: a temporary file in the same folder (a dot
// file, which node_exporter does not read), written, synced, given mode
// 0644 and renamed over the old one, so that a reader or a power cut sees
// either the old or the new file, never a part. (The folder is not
// synced: after a power cut the old values may be back, which the next
// run replaces; the file is never torn.)
func (e *Exporter) writeTextfile(name string, ss []series) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(seriesCollector(ss)); err != nil {
		return fmt.Errorf("textfile of %s: %w", name, err)
	}
	families, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("textfile of %s: %w", name, err)
	}
	var buf bytes.Buffer
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return fmt.Errorf("textfile of %s: %w", name, err)
		}
	}
	if err := writeFileAtomic(e.textfilePath(name), buf.Bytes(), textfileMode); err != nil {
		return fmt.Errorf("textfile of %s: %w", name, err)
	}
	return nil
}

// removeTextfile removes a plugin's textfile; a missing one is not an error.
func (e *Exporter) removeTextfile(name string) error {
	if err := os.Remove(e.textfilePath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove textfile of %s: %w", name, err)
	}
	return nil
}

// seriesCollector sends a fixed set of series.
type seriesCollector []series

func (seriesCollector) Describe(chan<- *prometheus.Desc) {}
func (c seriesCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c {
		ch <- s.metric
	}
}

// writeFileAtomic replaces path with data: temp file in the same folder,
// written, chmod, fsync, rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (retErr error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// statDir reports whether dir is a folder.
func statDir(dir string) (bool, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	return st.IsDir(), nil
}
