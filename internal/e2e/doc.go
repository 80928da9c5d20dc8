// Package e2e holds KeyStone's end-to-end tests: they build keystone-agent
// and keystonectl as they ship (CGO_ENABLED=0), start real agents on
// temporary data folders, and drive them only through keystonectl and the
// local API, with real component processes, real signed recipes and real
// file:// artifacts.
//
// The package has no code outside its tests and nothing imports it. It
// must not reach into an agent's internals while the agent runs: the store
// is opened only after the agent has stopped, to check its integrity.
//
// Most tests call t.Parallel: each makes devices of its own (a temporary
// folder, component names and so cgroup roots unique to it, free ports),
// its own brokers, repositories and service managers, and gives a fault
// hook only to its own agent's environment, never to the test process's.
// A test that measures an agent's memory or descriptors stays serial.
package e2e
