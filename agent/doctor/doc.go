// Package doctor checks that a device can run the agent as its
// configuration says: cgroups and their controllers, the keystone account
// and the modes and owners of its files, the clock against the device
// certificate, free space in the data folder, the broker with the
// configured mTLS, the component repository and its TUF root, the trusted
// keys, and the systemd unit. Each check ends ok, warn, fail or skip, with
// what to do about it.
//
// Everything it reads of the machine comes through an Env (the root
// folder, the cgroup file system, the clock, statfs, systemctl), so that
// each broken condition can be made in a test, and so that an image's root
// folder can be checked before it is flashed. It changes nothing: no file,
// no unit, no cgroup; the broker check connects with a clean session of
// its own that does not disturb a running agent's.
package doctor
