// Package plugin runs metrics plugins: one run hands a program the
// JSON context on stdin and reads one JSON document of metrics from its
// stdout, within a timeout and an output size cap. The program is a child
// process started through package runner, with the same confinement as a
// component process (run_as, no_new_privileges, cgroup limits, rlimits), or
// a WASI preview 1 module run in process by wazero, with no network, no
// host environment and read-only access to the fs_read paths only.
//
// A run's output is validated as a whole (types, finite values, counters not
// negative, histogram buckets cumulative up to +Inf) and mapped (rename,
// prefix, constant labels) to names and labels that Prometheus accepts; an
// invalid document fails the run and yields nothing, never part of it. The
// Exporter serves the last good values of every plugin as a
// prometheus.Collector, with keystone_plugin_runs_total,
// keystone_plugin_run_duration_seconds and keystone_plugin_up, drops the
// values of a plugin whose last good run is older than three intervals,
// and optionally writes each plugin's values to <textfile_dir>/<name>.prom
// for node_exporter, atomically.
//
// The package does not decide when a plugin runs, keep its state between
// runs, or know about deployments: the scheduler (package
// supervisor/plugins) does. It never logs or returns a secret: secrets
// reach the program only inside the context document.
package plugin
