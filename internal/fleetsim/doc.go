// Package fleetsim runs a simulated fleet of KeyStone devices in one
// process, or one part of a larger fleet (Options.From, Options.To) so that
// several processes can share a fleet too large for one process's open
// files, for tests and benchmarks of the operator side against a real
// broker (internal/mqtttest). Its benchmarks host their devices that way,
// in worker processes.
//
// Every simulated device runs the real device side of MQTT (comms.Device:
// job intake and checks, the store-backed outbox, statuses, the retained
// state and the will) over its own mutual-TLS connection, with its own
// certificate and its own store (one SQLite file per device). Only the
// deployment engine is replaced: a stand-in accepts each deployment,
// walks it through the steps the real engine reports on the device's event
// bus, and ends it as the device's role says: succeeded (its components
// then report RUNNING, so the retained state is healthy), failed
// (COMPONENT_FAILED, rolled back), or never (a silent device takes the job
// and stays in its start step). Some devices may start offline and be
// connected later.
//
// It owns the simulated devices' identities, stores, stand-in engines and
// lives; it decides nothing about rollouts. It is for tests only: shipped
// binaries must not import it.
package fleetsim
