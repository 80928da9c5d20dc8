// Package agent wires KeyStone together into the device daemon: Run starts
// everything in order (lock the data folder, open the store, start the
// supervisor and the deployment engine, serve the local API and the metrics,
// apply the development watch folder, tell systemd it is ready) and stops
// it in reverse on shutdown. Run is four phases that tests also call one
// by one: New wires everything and starts nothing but the event recorder,
// Start starts the rest, Wait runs until the end, Shutdown undoes it all in
// reverse, every step under its deadline.
//
// It owns the local API server (HTTP/JSON on a 0660 Unix socket, /metrics
// and /healthz also on http_listen, errors translated to codes in one
// place), the Prometheus registry, the event recorder that writes the bus
// to the store, the watch folder, the data folder lock and the systemd
// notifications. docs/operations.md describes them for operators.
//
// It holds no decision logic of its own: what to restart and when is the
// supervisor's, what a deployment changes is the deployment engine's, what
// to trust is ota's. It keeps no global state, starts no goroutine it does
// not stop and wait for, and never calls os.Exit; cmd/keystone-agent does
// flag parsing and exit codes.
package agent
