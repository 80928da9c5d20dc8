// Package agent wires KeyStone together: configuration, start-up and
// shutdown order, the local API server, metrics, and systemd notify.
//
// It holds no decision logic of its own; that lives in supervisor, ota and
// comms.
package agent
