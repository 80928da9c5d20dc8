// Package runner starts and stops the things a component runs: processes
// (exec, process group, credentials, rlimits, no_new_privs, cgroups, log
// capture) and metrics plugins.
//
// It knows nothing of deployments, dependencies or restart policy: a runner
// starts one thing, reports how it ended, and stops it when asked.
package runner
